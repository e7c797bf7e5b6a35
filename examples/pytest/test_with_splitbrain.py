"""splitbrain in your own test suite: the `splitbrain` fixture of splitbrain's pytest plugin (installed
with splitbrain; docs/pytest.md). Run as root (local nodes are network namespaces):

    python -m pytest examples/pytest/test_with_splitbrain.py --splitbrain-store runs

A failure says the verdict, the seed, the checker's reason, the report and `splitbrain repro RUN_DIR`.
CI runs this file (tests/integration/test_pytest_example.py).
"""

import pytest

# A few seconds each: 3 nodes, faults every second.
SHORT = {"time_limit": 3, "nemesis_interval": 1, "recovery": 1, "nodes": 3}


@pytest.mark.timeout(120)
def test_the_raft_store_is_linearizable_under_partitions_and_crashes(splitbrain):
    splitbrain.assert_valid(target="raft", workload="register", nemesis="partition,kill", seed=1, **SHORT)


@pytest.mark.timeout(300)
def test_stale_follower_reads_are_caught_within_four_seeds(splitbrain):
    found = splitbrain.assert_finds_bug(target="raft", workload="register", nemesis="partition", bugs="stale-read",
                                        within=4, **SHORT)
    assert "linearizable" in found.results["explanation"]
