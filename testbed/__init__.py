"""The test bed: what the tests, the benchmarks and the scripts share to drive a real stack on this host.

Bounded waits, disposable labelled containers, loopback ports, a bounded HTTP load, a loopback sshd standing in
for a remote hypervisor. Nothing here is deployed; nothing here imports the test suite.
"""
