"""The autoscaler image reads the schedules' time zones: zoneinfo finds a database inside it (the system's, or
the tzdata package pinned in uv.lock when the base image ships none), and the policy loader validates a
schedule in a half-hour zone and a DST zone there as it does at preview."""

from __future__ import annotations

import docker
import pytest

PROBE = """
from datetime import datetime
from zoneinfo import ZoneInfo
from autoscaler.policy import load_policy
load_policy({
    "replicas": {"min": 1, "max": 3},
    "targets": [{"name": "s", "metric": "queued_requests", "target": 1}],
    "timezone": "Asia/Kolkata",
    "schedules": [{"name": "x", "start": "30 2 * * *", "duration_seconds": 60, "min_replicas": 2,
                   "timezone": "Europe/Berlin"}],
})
summer = datetime(2026, 7, 1, 12, tzinfo=ZoneInfo("Europe/Berlin")).strftime("%Z%z")
winter = datetime(2026, 12, 1, 12, tzinfo=ZoneInfo("Europe/Berlin")).strftime("%Z%z")
print(summer, winter, datetime(2026, 12, 1, tzinfo=ZoneInfo("Asia/Kolkata")).strftime("%z"))
"""


@pytest.mark.parametrize(
    "environment",
    [{}, {"PYTHONTZPATH": "/nonexistent"}],
    ids=["with the image's own zone database", "with no system zone database, from the tzdata package"],
)
def test_the_autoscaler_image_resolves_time_zones(
    environment: dict[str, str], images: dict[str, str], docker_client: docker.DockerClient
) -> None:
    output = docker_client.containers.run(
        images["autoscaler"], ["-c", PROBE], entrypoint="python3", environment=environment, remove=True
    )
    assert output == b"CEST+0200 CET+0100 +0530\n"
