"""The scaling controller: applies the operator's rules to HAProxy's metrics through Swarm."""
