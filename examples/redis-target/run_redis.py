"""Test Redis from Python with splitbrain's API: the same run as

    splitbrain run --target redis --nodes 3 --nemesis partition --target-opt reads=replicas

but composed by hand from the public pieces: the target spec, a workload (generator + checkers), the
fault kinds, the nodes. Prints the verdict; exits 0 valid, 1 invalid, 2 unknown (as the CLI does).

    python run_redis.py [primary|replicas] [SEED]
"""

from __future__ import annotations

import sys

from splitbrain import (
    LocalNodes,
    Partition,
    RotatingKeys,
    Test,
    Workload,
    check_linearizable,
    check_stats,
    kv,
    run,
)
from splitbrain_redis import spec


def main(reads: str = "replicas", seed: int = 1) -> int:
    workload = Workload(
        name="register",  # the target's register client performs these ops
        generator=RotatingKeys(per_key=40, active=3),  # read / write / cas on a few keys at a time
        final=None,
        checkers={"linearizable": lambda history: check_linearizable(history, kv(None), time_limit=60),
                  "stats": check_stats},
    )
    test = Test(target=spec(), workload=workload, nemesis=[Partition(shapes=("primaries", "one"))],
                nodes=LocalNodes(3), options={"reads": reads}, time_limit=8, nemesis_interval=2, rate=120,
                seed=seed, store="runs")
    outcome = run(test)
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "replicas", int(sys.argv[2]) if len(sys.argv) > 2 else 1))
