"""Locustfile: the personas under the SpikeShape profile (see loadtests/shapes.py).

uv run locust -f loadtests/spike.py                       # web UI on http://127.0.0.1:8089
uv run locust -f loadtests/spike.py --headless --csv reports/spike --html reports/spike.html
"""

from loadtests import recording, slo  # noqa: F401  (registers the SLO gate and the run recording)
from loadtests.personas import BrowsingUser, CpuHeavyUser, WriterUser
from loadtests.shapes import SpikeShape

__all__ = ["BrowsingUser", "CpuHeavyUser", "SpikeShape", "WriterUser"]
