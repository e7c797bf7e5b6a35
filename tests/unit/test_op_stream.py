"""A repro's op stream: with the same seed, the generator hands out the same ops (f, key, value) in the same
order however the clients' timing differs -- which worker takes which op is the part left to timing."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest
from splitbrain.harness import interpreter
from splitbrain.harness.generator import Limit, Stagger, clients
from splitbrain.harness.workloads import RotatingKeys
from splitbrain.histories.op import Op


class Slow:
    """Completes every op, after a pause of its own: clients whose timing differs run by run."""

    def __init__(self, pause_s: float) -> None:
        self.pause_s = pause_s

    def invoke(self, test: Any, op: Op) -> Op:
        time.sleep(self.pause_s)
        return op.with_(type="ok")

    def close(self, test: Any) -> None:
        pass


def op_stream(pauses: list[float], seed: int = 11) -> list[tuple]:
    recorder = interpreter.ListRecorder()
    interpreter.run(None, clients(Stagger(0.0005, Limit(150, RotatingKeys()))),
                    clients={t: Slow(p) for t, p in enumerate(pauses)}, nemesis=None, recorder=recorder,
                    rng=random.Random(seed))
    return [(op.f, op.key, op.value) for op in recorder.ops if op.type == "invoke"]


@pytest.mark.timeout(60)
def test_the_same_seed_gives_the_same_op_stream_whatever_the_timing() -> None:
    fast = op_stream([0.0] * 4)
    uneven = op_stream([0.0, 0.002, 0.0005, 0.004])
    assert len(fast) == len(uneven) == 150
    assert fast == uneven
    assert fast != op_stream([0.0] * 4, seed=12)  # the seed does decide it
