"""Scale from zero: the first requests' latency and failures when a tier idling at no replica gets traffic, on the
stack as the Pulumi program deploys it (testbed/stack.py, the local stack's config with testbed/from_zero.py's
policy: min 0, 1 s interval, back to zero 6 s after the last request).

    uv run python -m benchmarks.scale_from_zero [--runs 5] [--seed N]

Each run waits for the tier at zero, then a random 0-3 s more (seeded) so the first request does not land right
after a tick, then sends 3 requests 0.2 s apart (GET /api/items, which reads Postgres). Prints each run and
min / median / max of the first request's latency, with the failures.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import docker

from testbed.from_zero import APP, POLICY, first_requests, wait_idle_at_zero
from testbed.stack import stand_up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    rng = random.Random(args.seed)  # noqa: S311 (a seeded, repeatable offset, not a secret)
    first: list[float] = []
    failed = sent = 0
    with stand_up(docker.from_env(), autoscaler=POLICY, app=APP) as stack:
        for run in range(args.runs):
            wait_idle_at_zero(stack)
            time.sleep(rng.uniform(0, 3))
            got = first_requests(stack)
            first.append(got.latencies_s[0])
            sent += len(got.statuses)
            failed += sum(1 for status in got.statuses if status != 200)
            latencies = ", ".join(f"{t:.2f}" for t in got.latencies_s)
            print(f"run {run}: statuses {got.statuses}, latencies {latencies} s", flush=True)
    print(
        f"\nfirst request, s: min {min(first):.2f} / median {statistics.median(first):.2f} / max {max(first):.2f}"
        f" over {args.runs} runs; {failed} of {sent} requests not 200"
    )


if __name__ == "__main__":
    main()
