"""Progress of a long check, for whoever watches (a console line), without a parameter through every
checker: a context variable holds the listener for the code that runs the check. Checkers call
``report``; nothing happens unless a caller is ``listening``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Listener = Callable[[str, int, int, int], None]  # (what, done, total, ops checked so far)
_listener: ContextVar[Listener | None] = ContextVar("splitbrain_check_progress", default=None)


def report(what: str, done: int, total: int, ops: int) -> None:
    listener = _listener.get()
    if listener is not None:
        listener(what, done, total, ops)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)
