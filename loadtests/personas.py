"""The people in a load test: each persona is a Locust user with weighted tasks whose responses are checked,
not just counted.

Shared across users in one Locust process: the ids writers have had acknowledged (readers read them, and the
failure drills check every acknowledged write is still there afterwards) and which replica served each
response (the X-Served-By header), both written out when the run ends (see loadtests/recording.py).
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from typing import Any

from locust import FastHttpUser, between, task

# Filled by the users, read by the recording listener.
ACKNOWLEDGED: dict[int, dict[str, Any]] = {}
SERVED_BY: Counter[str] = Counter()


def _note_replica(response: Any) -> None:
    replica = response.headers.get("x-served-by") if response.headers else None
    if replica:
        SERVED_BY[replica] += 1


class BrowsingUser(FastHttpUser):
    """Someone reading: pages through the item list and opens items others wrote."""

    weight = 3
    wait_time = between(0.5, 1.5)

    @task(2)
    def page_through(self) -> None:
        after = random.choice(list(ACKNOWLEDGED)) if ACKNOWLEDGED else 0
        with self.client.get(
            f"/api/items?limit=20&after={after}", name="/api/items?limit&after", catch_response=True
        ) as response:
            _note_replica(response)
            if response.status_code != 200:
                response.failure(f"list: status {response.status_code}")
                return
            ids = [item["id"] for item in response.json()["items"]]
            if ids != sorted(ids) or any(i <= after for i in ids):
                response.failure(f"list after {after} is not an ascending page past the cursor: {ids[:5]}")

    @task(3)
    def open_item(self) -> None:
        if not ACKNOWLEDGED:
            return
        item_id = random.choice(list(ACKNOWLEDGED))
        with self.client.get(
            f"/api/items/{item_id}", name="/api/items/{id}", catch_response=True
        ) as response:
            _note_replica(response)
            if response.status_code != 200:
                response.failure(f"read {item_id}: status {response.status_code}")
            elif response.json()["id"] != item_id:
                response.failure(f"read {item_id}: got item {response.json()['id']}")


class WriterUser(FastHttpUser):
    """Someone writing: creates an item, then reads it back and checks the content is what it wrote."""

    weight = 1
    wait_time = between(0.5, 1.0)

    @task
    def create_and_read_back(self) -> None:
        body = {
            "name": f"locust-{uuid.uuid4().hex[:12]}",
            "payload": {"n": random.randint(0, 10**6), "by": "writer"},
        }
        with self.client.post("/api/items", json=body, name="/api/items", catch_response=True) as response:
            _note_replica(response)
            if response.status_code != 201:
                response.failure(f"create: status {response.status_code}")
                return
            item_id = response.json()["id"]
            ACKNOWLEDGED[item_id] = body
        with self.client.get(
            f"/api/items/{item_id}", name="/api/items/{id}", catch_response=True
        ) as response:
            _note_replica(response)
            stored = response.json() if response.status_code == 200 else {}
            if (stored.get("name"), stored.get("payload")) != (body["name"], body["payload"]):
                response.failure(f"read back {item_id}: status {response.status_code}, content {stored}")


class CpuHeavyUser(FastHttpUser):
    """A client whose requests make replicas work: each burns `work_ms` of CPU time on a replica."""

    weight = 2
    wait_time = between(0.0, 0.1)
    work_ms = 50

    @task
    def work(self) -> None:
        with self.client.get(
            f"/api/work?ms={self.work_ms}", name="/api/work", catch_response=True
        ) as response:
            _note_replica(response)
            if response.status_code != 200:
                response.failure(f"work: status {response.status_code}")
            elif response.json()["cpu_ms"] < self.work_ms:
                response.failure(f"work: burned {response.json()['cpu_ms']} ms, asked {self.work_ms}")
