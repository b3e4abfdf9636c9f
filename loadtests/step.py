"""Locustfile: the personas under the StepShape profile (see loadtests/shapes.py).

uv run locust -f loadtests/step.py                       # web UI on http://127.0.0.1:8089
uv run locust -f loadtests/step.py --headless --csv reports/step --html reports/step.html
"""

from loadtests import recording, slo  # noqa: F401  (registers the SLO gate and the run recording)
from loadtests.personas import BrowsingUser, CpuHeavyUser, WriterUser
from loadtests.shapes import StepShape

__all__ = ["BrowsingUser", "CpuHeavyUser", "StepShape", "WriterUser"]
