"""Locustfile: the personas under the SteadyShape profile (see loadtests/shapes.py).

uv run locust -f loadtests/steady.py                       # web UI on http://127.0.0.1:8089
uv run locust -f loadtests/steady.py --headless --csv reports/steady --html reports/steady.html
"""

from loadtests import recording, slo  # noqa: F401  (registers the SLO gate and the run recording)
from loadtests.personas import BrowsingUser, CpuHeavyUser, WriterUser
from loadtests.shapes import SteadyShape

__all__ = ["BrowsingUser", "CpuHeavyUser", "SteadyShape", "WriterUser"]
