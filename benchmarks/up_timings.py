"""How long the everyday acts on a stack take through the apply harness: `up` of a new stack, a no-op `up`, an
`up` that rolls the app image under load, and `down`.

Each run deploys a test stack of the local stack's config (testbed/stack.py config_for: its own prefix and
ports) with the autoscaler pinned at `REPLICAS`, so the roll has the same work every time. The images are
built before the first run (their build is not timed). A roll renames the app image (the same image under a new
tag: Swarm rolls every task onto it, start-first, one at a time) while `LOAD_WORKERS` clients read through
HAProxy; it is timed from the `up` call until every running task is on the new image and as many run as
before, and the requests that failed meanwhile are counted.

    flock /tmp/hostscale-docker.lock uv run --frozen python -m benchmarks.up_timings --runs 5

Prints one line per run, then min / median / max of each act.
"""

from __future__ import annotations

import argparse
import io
import secrets
import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import docker

from harness import dev_stack
from images.build import build_all
from testbed.load import Load
from testbed.stack import TestStack, config_for
from testbed.waiting import wait_for

REPLICAS = 4
LOAD_WORKERS = 4
PINNED = {
    "replicas": {"min": REPLICAS, "max": REPLICAS},
    "interval_seconds": 2,
    "targets": [{"name": "sessions", "metric": "sessions_per_replica", "target": 100}],
}


def timed(act: Callable[[], Any]) -> tuple[float, Any]:
    started = time.monotonic()
    result = act()
    return time.monotonic() - started, result


def images_of_running_tasks(stack: TestStack) -> Counter[str]:
    return Counter(task["Spec"]["ContainerSpec"]["Image"].split("@")[0] for task in stack.running_tasks())


def one_run(client: docker.DockerClient, app_image: str) -> dict[str, float]:
    run_id = secrets.token_hex(4)
    name, prefix = f"bench-{run_id}", f"hs-{run_id}"
    config = config_for(prefix, autoscaler=PINNED, app={"image": app_image, "initial_replicas": REPLICAS})
    rolled = f"{app_image}-rolled-{run_id}"
    client.images.get(app_image).tag(rolled)
    quiet = io.StringIO()  # the harness's progress lines: not what is measured
    try:
        cold, outputs = timed(lambda: dev_stack.up(name, config=config, out=quiet))
        stack = TestStack(client, name, prefix, outputs)
        stack.wait_running(REPLICAS)
        no_op, _ = timed(lambda: dev_stack.up(name, config=config, out=quiet))
        rolled_config = {**config, "hostscale:app": {**config["hostscale:app"], "image": rolled}}
        with Load(stack.url, workers=LOAD_WORKERS, max_seconds=600) as load:
            started = time.monotonic()
            dev_stack.up(name, config=rolled_config, out=quiet)
            wait_for(
                f"{REPLICAS} replicas on the new image",
                lambda: images_of_running_tasks(stack) == Counter({rolled: REPLICAS}),
                600,
            )
            roll = time.monotonic() - started
        failed = float(len(load.failures))
        down, _ = timed(lambda: dev_stack.down(name, delete_data=True, out=quiet))
    except BaseException:
        dev_stack.down(name, delete_data=True, out=quiet)
        raise
    finally:
        client.images.remove(rolled, noprune=True)
    return {
        "up (new stack)": cold,
        "no-op up": no_op,
        "image roll": roll,
        "roll: failed": failed,
        "down": down,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    client = docker.from_env()
    was_manager = bool(client.info()["Swarm"].get("ControlAvailable"))
    app_image = build_all(["app"])["app"]
    build_all()  # every image the stack uses, so no run times a build
    runs = []
    try:
        for index in range(args.runs):
            run = one_run(client, app_image)
            runs.append(run)
            print(
                f"run {index + 1}: " + ", ".join(f"{act} {value:.2f}" for act, value in run.items()),
                flush=True,
            )
    finally:
        if not was_manager and client.info()["Swarm"]["LocalNodeState"] == "active":
            client.swarm.leave(force=True)
    print(
        f"over {args.runs} runs ({REPLICAS} replicas, seconds; failed requests for the roll), min / median / max:"
    )
    for act in runs[0]:
        values = [run[act] for run in runs]
        print(f"  {act:16} {min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}")


if __name__ == "__main__":
    main()
