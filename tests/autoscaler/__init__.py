# The status listener answers only to an IP or localhost (autoscaler/host_guard.py); Starlette's TestClient
# sends Host "testserver" unless given a base URL, so the tests reach it as a browser on the host would.
LOOPBACK = "http://127.0.0.1:9100"
