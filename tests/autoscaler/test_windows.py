"""The stable and panic windows over fast reads (autoscaler/windows.py), and the loop that samples into them:
averages, what leaves a window, a burst that wakes the loop, panic mode that never scales in."""

from __future__ import annotations

from autoscaler.controller import Controller
from autoscaler.haproxy_metrics import BackendSample
from autoscaler.policy import WindowPolicy, load_policy
from autoscaler.windows import Windows
from tests.autoscaler.test_controller import Clock, FakeReplicas, FakeSource

WINDOWS = WindowPolicy(sample_interval_s=0.25, stable_s=10.0, panic_s=1.0, panic_threshold=2.0)


def sample(at: float, ready: int, sessions_per_replica: float, demand: float = 0.0) -> BackendSample:
    return BackendSample(
        at, ready, {"sessions_per_replica": sessions_per_replica, "queued_requests": 0}, {}, demand
    )


def test_per_replica_metrics_average_the_load_over_the_replicas_ready_now() -> None:
    windows = Windows(WINDOWS)
    windows.add(sample(1.0, 2, 10))  # 20 sessions on 2 replicas
    windows.add(sample(2.0, 4, 10))  # 40 sessions on 4
    view = windows.view(2.0)
    assert view.stable == {"sessions_per_replica": 7.5, "queued_requests": 0.0}  # 30 sessions on the 4 ready


def test_the_panic_window_sees_only_its_last_seconds() -> None:
    windows = Windows(WINDOWS)
    for tick in range(40):  # 10 s of 2 sessions per replica, then one second of 12
        windows.add(sample(tick * 0.25, 2, 2))
    for tick in range(4):
        windows.add(sample(10.25 + tick * 0.25, 2, 12))
    view = windows.view(11.0)
    assert view.panic["sessions_per_replica"] == 12.0
    assert 2 < view.stable["sessions_per_replica"] < 4


def test_samples_older_than_the_stable_window_leave_it_and_demand_is_its_maximum() -> None:
    windows = Windows(WINDOWS)
    windows.add(sample(0.0, 1, 50, demand=50))
    windows.add(sample(5.0, 1, 0, demand=3))
    windows.add(sample(10.5, 1, 0, demand=0))
    view = windows.view(10.5)
    assert (view.stable["sessions_per_replica"], view.demand) == (0.0, 3.0)


def test_at_zero_ready_replicas_per_replica_averages_are_missing() -> None:
    windows = Windows(WINDOWS)
    windows.add(BackendSample(1.0, 0, {"queued_requests": 4}, {}, 4))
    assert windows.view(1.0).stable == {"queued_requests": 4.0}


POLICY = {
    "replicas": {"min": 2, "max": 10},
    "interval_seconds": 2,
    "targets": [{"name": "sessions", "metric": "sessions_per_replica", "target": 2}],
    "scale_up": {"max_step": None, "max_step_percent": None},
    "scale_down": {"stabilization_seconds": 0, "cooldown_seconds": 0},
    "windows": {"sample_interval_seconds": 0.25, "stable_seconds": 20, "panic_seconds": 1},
}


def sampling_controller() -> tuple[Controller, FakeSource, FakeReplicas, Clock]:
    clock = Clock()
    source, swarm = FakeSource(clock, sessions_per_replica=2, ready=2), FakeReplicas(2)
    loop = Controller(load_policy(POLICY), source, swarm, clock=clock, wall_clock=clock)
    return loop, source, swarm, clock


def run(loop: Controller, clock: Clock, seconds: float) -> None:
    for _ in range(int(seconds / 0.25)):
        clock.now += 0.25
        loop.sample()


def test_a_burst_wakes_the_loop_before_its_interval_and_it_scales_on_the_panic_window() -> None:
    loop, source, swarm, clock = sampling_controller()
    run(loop, clock, 10)
    assert loop.tick().desired == 2
    source.sessions_per_replica = 6  # 3x the target on both replicas
    run(loop, clock, 0.75)
    assert loop.wait_for_tick(0), "the sampler must wake the loop"
    event = loop.tick()
    # The panic second holds three reads of 6 and one of 2: 5 per replica; the stable 20 s (40 reads of 2, 3 of 6) barely moved.
    assert (event.desired, swarm.writes) == (5, [5])
    assert event.reasons == (
        "rule 'sessions': 2.279 vs target 2 asks for 3",
        "panic: over the last 1 s rule 'sessions' asks for 5, 2.5x the 2 ready",
    )


def test_steady_load_does_not_wake_the_loop() -> None:
    loop, _, _, clock = sampling_controller()
    loop.tick()
    run(loop, clock, 5)
    assert not loop.wait_for_tick(0)


def test_no_scale_in_while_panicking_and_scale_in_after_a_calm_stable_window() -> None:
    loop, source, swarm, clock = sampling_controller()
    loop.tick()
    source.sessions_per_replica = 8
    run(loop, clock, 1)
    assert loop.tick().desired == 8
    source.ready, source.sessions_per_replica = 8, 0.1  # the burst is over
    run(loop, clock, 19)
    held = loop.tick()
    assert (held.desired, held.reasons[-1]) == (8, "panic mode for 1.0 s more: no scale-in")
    run(loop, clock, 2)
    assert loop.tick().direction == "down"
    assert swarm.writes == [8, 7]  # one replica per scale-in decision (the default max_step down)


def test_a_burst_past_max_wakes_the_loop_once_not_at_every_read() -> None:
    loop, source, _, clock = sampling_controller()
    loop.tick()
    source.sessions_per_replica = 50  # asks for 50 replicas; max is 10
    run(loop, clock, 1)
    assert loop.wait_for_tick(0)
    assert loop.tick().desired == 10
    run(loop, clock, 1)
    assert not loop.wait_for_tick(0), "at max, another tick changes nothing"


def test_no_early_tick_while_the_scale_up_cooldown_holds() -> None:
    clock = Clock()
    source, swarm = FakeSource(clock, sessions_per_replica=2, ready=2), FakeReplicas(2)
    policy = load_policy(
        {**POLICY, "scale_up": {"max_step": 1, "max_step_percent": None, "cooldown_seconds": 5}}
    )
    loop = Controller(policy, source, swarm, clock=clock, wall_clock=clock)
    loop.tick()
    source.sessions_per_replica = 8
    run(loop, clock, 1)
    assert loop.wait_for_tick(0)
    assert loop.tick().desired == 3  # one step: max_step 1
    run(loop, clock, 2)
    assert not loop.wait_for_tick(0), "the cooldown would hold the next step"
    run(loop, clock, 3)
    assert loop.wait_for_tick(0)
