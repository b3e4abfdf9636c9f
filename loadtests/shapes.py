"""Load profiles, each a LoadTestShape with documented settings. Each profile has its own locustfile
(loadtests/steady.py, step.py, spike.py, scale_cycle.py), because Locust uses the one shape it finds there.

Sized for a 2-core host that also runs HAProxy, the replicas and Postgres: the scale cycle's high phase is
enough to cross the local stack's rules (4 sessions per replica), its low phases are not.
"""

from __future__ import annotations

from locust import LoadTestShape


class SteadyShape(LoadTestShape):
    """The same number of users for the whole run."""

    users = 12  # concurrent users
    spawn_rate = 4.0  # users started per second
    duration_s = 120  # then the run ends

    def tick(self) -> tuple[int, float] | None:
        return (self.users, self.spawn_rate) if self.get_run_time() < self.duration_s else None


class StepShape(LoadTestShape):
    """Up in stages: `step_users` more every `step_s`, `steps` times, then the run ends."""

    step_users = 6
    step_s = 30
    steps = 4
    spawn_rate = 3.0

    def tick(self) -> tuple[int, float] | None:
        step = int(self.get_run_time() // self.step_s)
        return ((step + 1) * self.step_users, self.spawn_rate) if step < self.steps else None


class SpikeShape(LoadTestShape):
    """A baseline with one sudden spike: `spike_users` from `spike_at_s` for `spike_s`."""

    base_users = 4
    spike_users = 30
    spike_at_s = 30
    spike_s = 20
    duration_s = 90
    spawn_rate = 30.0  # a spike arrives all at once

    def tick(self) -> tuple[int, float] | None:
        run_time = self.get_run_time()
        if run_time >= self.duration_s:
            return None
        spiking = self.spike_at_s <= run_time < self.spike_at_s + self.spike_s
        return (self.spike_users if spiking else self.base_users, self.spawn_rate)


class ScaleCycleShape(LoadTestShape):
    """Low, then high enough to trigger the scaling rules, then low long enough for the scale-in to finish."""

    low_users = 3
    high_users = 36
    warm_s = 20  # low load before: the tier sits at its minimum
    high_s = 70  # long enough to scale out and for the new replicas to serve
    cool_s = 90  # scale-down stabilization (30 s) plus one step per cooldown back to the minimum
    spawn_rate = 6.0

    def tick(self) -> tuple[int, float] | None:
        run_time = self.get_run_time()
        if run_time < self.warm_s:
            return (self.low_users, self.spawn_rate)
        if run_time < self.warm_s + self.high_s:
            return (self.high_users, self.spawn_rate)
        if run_time < self.warm_s + self.high_s + self.cool_s:
            return (self.low_users, self.spawn_rate)
        return None
