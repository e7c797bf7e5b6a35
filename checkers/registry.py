"""Checkers by the names the CLI and test configurations use.

Each entry turns a history into a Result; imports are lazy so a missing optional piece (networkx for
the graph checkers) only matters when that checker is asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from splitbrain.checkers.result import Result
from splitbrain.histories.history import History

CheckFn = Callable[[History], Result]

CHECKER_NAMES = ("linearizable", "lock", "list-append", "rw-register", "set", "counter", "unique-ids", "stats")


def linearizable_checker(model_name: str, initial: Any = None, *, nil_reads: str | None = None,
                         time_limit: float | None = None, max_configs: int | None = None) -> CheckFn:
    from splitbrain.checkers.linearizable import DEFAULT_MAX_CONFIGS, check_linearizable
    from splitbrain.checkers.models import model_named

    model_named(model_name, initial, nil_reads=nil_reads)  # fail early on a bad name or initial value

    def check(history: History) -> Result:
        model = model_named(model_name, initial, nil_reads=nil_reads)  # fresh: models may keep per-run state
        return check_linearizable(history, model, time_limit=time_limit,
                                  max_configs=max_configs or DEFAULT_MAX_CONFIGS)

    return check


def checker_named(name: str, *, consistency_model: str | None = None) -> CheckFn:
    """The checker for a CLI name (not ``linearizable``: that one needs a model, see above)."""
    if name == "lock":
        from splitbrain.checkers.lock import check_lock
        return check_lock
    if name == "list-append":
        from splitbrain.checkers.elle import check_list_append
        if consistency_model:
            return lambda h: check_list_append(h, consistency_model=consistency_model)
        return check_list_append
    if name == "rw-register":
        from splitbrain.checkers.elle import check_rw_register
        if consistency_model:
            return lambda h: check_rw_register(h, consistency_model=consistency_model)
        return check_rw_register
    if name in ("set", "counter", "unique-ids", "stats"):
        from splitbrain.checkers import basic
        return getattr(basic, "check_" + name.replace("-", "_"))
    raise ValueError(f"unknown checker {name!r}; expected one of {', '.join(CHECKER_NAMES)}")
