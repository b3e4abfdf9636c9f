"""Benchmark users: each hammers one endpoint with no think time, to measure throughput and latency.

Run one class at a time (benchmarks/request_path.py does), e.g.:
    locust -f loadtests/benchmark.py --headless -u 32 -r 32 -t 20s -H http://127.0.0.1:8080 HealthzUser
"""

from __future__ import annotations

from locust import FastHttpUser, constant, task


class HealthzUser(FastHttpUser):
    """The cheapest request the app serves: no database, no work. Measures the HTTP path itself."""

    wait_time = constant(0)

    @task
    def healthz(self) -> None:
        with self.client.get("/healthz", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")


class ReadItemUser(FastHttpUser):
    """Reads one item by id: one indexed SELECT through the connection pool."""

    wait_time = constant(0)
    item_id = 0

    def on_start(self) -> None:
        response = self.client.post("/api/items", json={"name": "benchmark", "payload": {"k": "v" * 100}})
        self.item_id = response.json()["id"]

    @task
    def read(self) -> None:
        with self.client.get(
            f"/api/items/{self.item_id}", name="/api/items/{id}", catch_response=True
        ) as response:
            if response.status_code != 200 or response.json()["id"] != self.item_id:
                response.failure(f"status {response.status_code}")


class CreateItemUser(FastHttpUser):
    """Creates items: one INSERT ... RETURNING per request, committed."""

    wait_time = constant(0)

    @task
    def create(self) -> None:
        body = {"name": "benchmark", "payload": {"k": "v" * 100}}
        with self.client.post("/api/items", json=body, catch_response=True) as response:
            if response.status_code != 201:
                response.failure(f"status {response.status_code}")
