"""The result every checker returns, and how results compose."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, Protocol, runtime_checkable

from splitbrain.histories.history import History

Validity = bool | Literal["unknown"]

# Jepsen's order: one invalid result makes the whole invalid; otherwise one unknown makes it unknown.
_RANK = {False: 0, "unknown": 1, True: 2}


def merge_validity(values: Iterable[Validity]) -> Validity:
    worst: Validity = True
    for v in values:
        if _RANK[v] < _RANK[worst]:
            worst = v
    return worst


class Result:
    """``valid`` is True, False or "unknown"; ``details`` is JSON-serializable; ``explanation`` is text
    a person can act on (empty when valid).

    (A plain class, not a dataclass: importing dataclasses is a tenth of a `splitbrain check`.)"""

    __slots__ = ("valid", "details", "explanation")

    def __init__(self, valid: Validity, details: dict[str, Any] | None = None, explanation: str = "") -> None:
        self.valid = valid
        self.details = {} if details is None else details
        self.explanation = explanation

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Result):
            return NotImplemented
        return (self.valid, self.details, self.explanation) == (other.valid, other.details, other.explanation)

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass was

    def __repr__(self) -> str:
        return f"Result(valid={self.valid!r}, details={self.details!r}, explanation={self.explanation!r})"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"valid": self.valid}
        out.update(self.details)
        if self.explanation:
            out["explanation"] = self.explanation
        return out


def compose(results: Mapping[str, Result]) -> Result:
    """Several named checker results as one: validity false > unknown > true."""
    valid = merge_validity(r.valid for r in results.values())
    text = "\n".join(f"[{name}] {r.explanation}" for name, r in results.items() if r.explanation)
    return Result(valid, {name: r.to_json() for name, r in results.items()}, text)


@runtime_checkable
class Checker(Protocol):
    def check(self, test: Any, history: History, opts: Mapping[str, Any]) -> Result: ...


CheckFn = Callable[[History], Result]


def check_all(checkers: Mapping[str, CheckFn], history: History) -> Result:
    """Run each named checker on ``history`` and compose the results. A checker that raises gives
    ``unknown`` with its error for that checker only: the others' verdicts stand (Jepsen's check-safe),
    so one broken checker never costs a run its results."""
    results: dict[str, Result] = {}
    for name, check in checkers.items():
        try:
            results[name] = check(history)
        except Exception as e:  # noqa: BLE001 - contained: this checker's verdict is unknown, with why
            error = f"{type(e).__name__}: {e}"
            results[name] = Result("unknown", {"error": error}, f"the checker failed: {error}")
    return compose(results)
