"""Transactional workloads, target-independent: Elle's list-append and rw-register.

Every op is ``f`` "txn" with a list of micro-ops (DESIGN.md, "Op vocabularies"):

- list-append: ``["append", k, v]`` / ``["r", k, None]`` (ok: ``["r", k, [v1, v2, ...]]``);
- rw-register: ``["w", k, v]`` / ``["r", k, None]`` (ok: ``["r", k, v or None]``).

The generator follows Elle's (``elle.list-append/gen``): a few hot keys at a time, each txn 1..N
micro-ops over them, every written value unique (one counter for the whole run), and a key retired and
replaced by a fresh one after ``writes_per_key`` writes, so that each key's version order stays short
and recoverable from its reads. After healing, final read-only txns read every key the run can have
used, so an acknowledged write that no later read shows is still caught (a real-time cycle).

A client records ``fail`` only for a txn that certainly did not commit (the system aborted it, or its
commit was never sent) and ``info`` for the rest; it never retries a txn whose commit is in doubt.

Workload options (``--workload-opt NAME=VALUE``; ``--consistency-model`` is the first one):
``consistency-model`` (default strict-serializable, Elle's), ``key-count``, ``max-txn-length``,
``max-writes-per-key``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from splitbrain.checkers.result import CheckFn, Result
from splitbrain.control.errors import ConfigError
from splitbrain.harness.generator import Context, Generator, Once, Seq
from splitbrain.harness.workloads import Workload, WorkloadSpec
from splitbrain.histories.history import History

DEFAULT_MODEL = "strict-serializable"
FINAL_KEYS_PER_TXN = 16
MAX_FINAL_KEYS = 4096  # final reads of at most this many keys (the most a run of an hour at 100/s uses)


@dataclass(frozen=True)
class TxnOps(Generator):
    """Txns of ``min_length``..``max_length`` micro-ops over a window of ``key_count`` keys: a read with
    probability ``read_share``, else a write (``write_f``: "append" or "w") of a fresh value. A key
    retires after ``writes_per_key`` writes and a fresh key takes its slot."""

    write_f: str = "append"
    key_count: int = 4
    min_length: int = 1
    max_length: int = 4
    writes_per_key: int = 32
    read_share: float = 0.5
    next_key: int = 0
    next_value: int = 1
    window: tuple[tuple[int, int], ...] = ()  # (key, writes it has left)

    def op(self, test: Any, ctx: Context):
        rng = ctx.rng
        window = list(self.window)
        next_key, next_value = self.next_key, self.next_value
        while len(window) < self.key_count:
            window.append((next_key, self.writes_per_key))
            next_key += 1
        mops: list[list[Any]] = []
        for _ in range(rng.randint(self.min_length, self.max_length)):
            slot = rng.randrange(len(window))
            key, left = window[slot]
            if rng.random() < self.read_share:
                mops.append(["r", key, None])
                continue
            mops.append([self.write_f, key, next_value])
            next_value += 1
            if left <= 1:
                window[slot] = (next_key, self.writes_per_key)
                next_key += 1
            else:
                window[slot] = (key, left - 1)
        return {"f": "txn", "value": mops}, replace(self, next_key=next_key, next_value=next_value,
                                                     window=tuple(window))

    def most_keys(self, writes: float) -> int:
        """How many keys a run of at most ``writes`` writes can touch."""
        return int(writes / self.writes_per_key) + self.key_count + 1


def final_reads(keys: int, per_txn: int = FINAL_KEYS_PER_TXN) -> Generator:
    """Read-only txns over keys 0..keys-1, ``per_txn`` keys each."""
    return Seq(tuple(Once({"f": "txn", "value": [["r", k, None] for k in range(start, min(keys, start + per_txn))]})
                     for start in range(0, keys, per_txn)))


# -- options -------------------------------------------------------------------------------------------

OPTIONS = {
    "consistency-model": f"the model the history must satisfy (default {DEFAULT_MODEL}); e.g. serializable, "
                         "snapshot-isolation, repeatable-read, read-committed",
    "key-count": "keys written at a time (default 4)",
    "max-txn-length": "micro-ops per txn, at most (default 4)",
    "max-writes-per-key": "writes before a key retires (default 32)",
}
DEFAULTS = {"key-count": 4, "max-txn-length": 4, "max-writes-per-key": 32}  # of the whole-number options
_INT_OPTIONS = {"key-count": (1, 1000), "max-txn-length": (1, 100), "max-writes-per-key": (1, 100_000)}


def _int_option(options: Mapping[str, Any], name: str, default: int) -> int:
    raw = options.get(name, default)
    low, high = _INT_OPTIONS[name]
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = None
    if value is None or isinstance(raw, bool) or not low <= value <= high or str(raw).strip() != str(value):
        raise ConfigError(f"--workload-opt {name}: expected a whole number from {low} to {high}, got {raw!r}")
    return value


def consistency_model(options: Mapping[str, Any]) -> str:
    from splitbrain.checkers.elle.consistency import MODELS, canonical_model

    name = str(options.get("consistency-model", DEFAULT_MODEL))
    try:
        return canonical_model(name)
    except ValueError:
        raise ConfigError(f"--consistency-model {name!r}: expected one of {', '.join(MODELS)}") from None


def validate_options(options: Mapping[str, Any]) -> None:
    consistency_model(options)
    for name, default in DEFAULTS.items():
        _int_option(options, name, default)


def txn_ops(write_f: str, options: Mapping[str, Any]) -> TxnOps:
    return TxnOps(write_f, key_count=_int_option(options, "key-count", DEFAULTS["key-count"]),
                  max_length=_int_option(options, "max-txn-length", DEFAULTS["max-txn-length"]),
                  writes_per_key=_int_option(options, "max-writes-per-key", DEFAULTS["max-writes-per-key"]))


# -- the workloads -------------------------------------------------------------------------------------

def _txn_workload(name: str, write_f: str, check: Callable[..., Result], test: Any) -> Workload:
    from splitbrain.harness.workloads import common_checkers

    options = getattr(test, "workload_options", {}) or {}
    model = consistency_model(options)
    ops = txn_ops(write_f, options)
    writes = test.rate * test.time_limit * ops.max_length * (1 - ops.read_share)
    final = final_reads(min(ops.most_keys(writes), MAX_FINAL_KEYS))

    def checked(history: History) -> Result:
        return check(history, consistency_model=model)

    checkers: dict[str, CheckFn] = {name: checked, **common_checkers()}
    return Workload(name, ops, final, checkers)


def list_append_workload(test: Any) -> Workload:
    from splitbrain.checkers.elle import check_list_append

    return _txn_workload("list-append", "append", check_list_append, test)


def rw_register_workload(test: Any) -> Workload:
    from splitbrain.checkers.elle import check_rw_register

    return _txn_workload("rw-register", "w", check_rw_register, test)


# As the entry points of pyproject.toml name them.
list_append = WorkloadSpec("list-append", list_append_workload,
                           "txns of appends to lists and reads of whole lists (Elle): isolation anomalies by "
                           "name, under --consistency-model (default strict-serializable)",
                           options=OPTIONS, validate=validate_options)
rw_register = WorkloadSpec("rw-register", rw_register_workload,
                           "txns of register writes and reads (Elle's rw-register), under --consistency-model",
                           options=OPTIONS, validate=validate_options)
