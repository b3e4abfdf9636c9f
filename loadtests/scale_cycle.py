"""Locustfile: the personas under the ScaleCycleShape profile (see loadtests/shapes.py).

uv run locust -f loadtests/scale_cycle.py                       # web UI on http://127.0.0.1:8089
uv run locust -f loadtests/scale_cycle.py --headless --csv reports/scale_cycle --html reports/scale_cycle.html
"""

from loadtests import recording, slo  # noqa: F401  (registers the SLO gate and the run recording)
from loadtests.personas import BrowsingUser, CpuHeavyUser, WriterUser
from loadtests.shapes import ScaleCycleShape

__all__ = ["BrowsingUser", "CpuHeavyUser", "ScaleCycleShape", "WriterUser"]
