"""The Nemesis contract, and how several nemeses act as one."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from splitbrain.control.remote import Remote
from splitbrain.histories.op import Op


@runtime_checkable
class Nemesis(Protocol):
    """A fault injector. ``invoke`` gets the nemesis op the generator chose (``f`` one of ``fs()``) and
    returns its completion; ``heal`` undoes every fault it may have left, is idempotent, and is always
    called at the end of a run, also after errors and on Ctrl-C. An optional ``teardown(test)`` runs once
    the target's processes are stopped (ComposedNemesis.teardown)."""

    def setup(self, test: Any) -> None: ...

    def invoke(self, test: Any, op: Op) -> Op: ...

    def heal(self, test: Any) -> None: ...

    def fs(self) -> set[str]: ...


@dataclass
class NemesisContext:
    """What a fault kind's nemesis acts on: each node's Remote and address, the run's nemesis random
    source, and the target (set once it is built, before any fault: read it at invoke time)."""

    remotes: Mapping[str, Remote]
    addresses: Mapping[str, str]
    rng: random.Random
    target: Any = None
    _shared: dict[str, Any] = field(default_factory=dict, repr=False)

    def shared(self, key: str, make: Callable[[], Any]) -> Any:
        """One nemesis for several fault kinds (kill and pause share the one that knows what is paused)."""
        if key not in self._shared:
            self._shared[key] = make()
        return self._shared[key]

    @property
    def nodes(self) -> list[str]:
        return sorted(self.remotes)


def completed(op: Op, value: Any, error: str | None = None) -> Op:
    """The completion of a nemesis op: always ``info`` (a fault has no ok/fail, as in Jepsen)."""
    return op.with_(type="info", value=value, error=error)


class ComposedNemesis:
    """Several nemeses as one: each op goes to the nemesis that handles its ``f``; heal heals them all."""

    def __init__(self, nemeses: Iterable[Nemesis]) -> None:
        self.nemeses = list({id(n): n for n in nemeses}.values())  # one that serves several kinds, once
        self._by_f: dict[str, Nemesis] = {}
        for nemesis in self.nemeses:
            for f in nemesis.fs():
                if f in self._by_f:
                    raise ValueError(f"two nemeses handle the op {f!r}: {self._by_f[f]!r} and {nemesis!r}")
                self._by_f[f] = nemesis

    def setup(self, test: Any) -> None:
        for nemesis in self.nemeses:
            nemesis.setup(test)

    def invoke(self, test: Any, op: Op) -> Op:
        nemesis = self._by_f.get(op.f)
        if nemesis is None:
            return completed(op, None, error=f"no nemesis handles {op.f!r}; known: {sorted(self._by_f)}")
        return nemesis.invoke(test, op)

    def heal(self, test: Any) -> None:
        # Heal every nemesis even when one fails, then report the first failure.
        errors: list[BaseException] = []
        for nemesis in self.nemeses:
            try:
                nemesis.heal(test)
            except Exception as e:  # noqa: BLE001 - collected and re-raised below
                errors.append(e)
        if errors:
            raise errors[0]

    def teardown(self, test: Any) -> None:
        """The optional last step of a nemesis, after the target's processes are stopped (a file system
        under their data comes off only then): called on those that have it, every one even when one fails."""
        errors: list[BaseException] = []
        for nemesis in self.nemeses:
            if callable(getattr(nemesis, "teardown", None)):
                try:
                    nemesis.teardown(test)
                except Exception as e:  # noqa: BLE001 - collected and re-raised below
                    errors.append(e)
        if errors:
            raise errors[0]

    def fs(self) -> set[str]:
        return set(self._by_f)
