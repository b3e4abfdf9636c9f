"""Each load profile's schedule: (users, spawn rate) by run time, and when it ends."""

from __future__ import annotations

import pytest
from locust import LoadTestShape

from loadtests.shapes import ScaleCycleShape, SpikeShape, SteadyShape, StepShape


def schedule(shape_class: type[LoadTestShape], times: list[float]) -> list[int | None]:
    users: list[int | None] = []
    for moment in times:
        frozen = type("Frozen", (shape_class,), {"get_run_time": lambda self, at=moment: at})
        tick = frozen().tick()
        users.append(None if tick is None else tick[0])
    return users


@pytest.mark.parametrize(
    ("shape", "times", "expected"),
    [
        pytest.param(SteadyShape, [0, 60, 119, 120], [12, 12, 12, None], id="steady holds then ends"),
        pytest.param(
            StepShape, [0, 30, 60, 90, 119, 120], [6, 12, 18, 24, 24, None], id="step climbs in stages"
        ),
        pytest.param(
            SpikeShape, [0, 29, 30, 49, 50, 89, 90], [4, 4, 30, 30, 4, 4, None], id="spike comes and goes"
        ),
        pytest.param(
            ScaleCycleShape,
            [0, 19, 20, 89, 90, 179, 180],
            [3, 3, 36, 36, 3, 3, None],
            id="scale cycle low high low",
        ),
    ],
)
def test_shape_schedule(shape: type[LoadTestShape], times: list[float], expected: list[int | None]) -> None:
    assert schedule(shape, times) == expected
