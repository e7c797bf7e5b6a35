"""How often a stored run's failure comes back: its test (options, seed, fault schedule) re-run N times.

    repro_tries(run_dir, tries=N, store=None) -> Tally      # the adapter over run.py, one run dir per try
    tally(stored_signature, trials) -> Tally                # pure: the count and the exit code

A real cluster is not deterministic, so one re-run that passes says little; "failing in k of N tries" is
what a user needs before trusting a fix. A try counts as failing when it fails with the stored run's
signature (checker + anomaly kind, harness/shrink.py ``signature_of``); a try that fails otherwise is
counted apart. A stored run that passed has no signature: then any failing try counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from splitbrain.harness.shrink import signature_of

EXIT_INVALID = 1


@dataclass(frozen=True)
class ReproTry:
    signature: frozenset[str]  # what failed in this try; empty: it did not fail
    exit_code: int             # the try's own exit code (0 valid, 1 invalid, 2 unknown, 4 the run failed)
    run_dir: str


@dataclass(frozen=True)
class Tally:
    tries: int
    failing: int               # tries that failed with the stored signature
    failing_otherwise: int     # tries that failed with another signature
    last_exit: int
    run_dirs: tuple[str, ...]

    @property
    def exit_code(self) -> int:
        """1 when any try failed as the stored run did, else the last try's verdict."""
        return EXIT_INVALID if self.failing else self.last_exit

    def summary(self) -> str:
        other = f" ({self.failing_otherwise} more failed otherwise)" if self.failing_otherwise else ""
        return f"failing in {self.failing} of {self.tries} tries{other}"


def tally(stored: frozenset[str], trials: Iterable[ReproTry]) -> Tally:
    done = list(trials)
    same = [t for t in done if t.signature and (t.signature & stored if stored else True)]
    other = sum(1 for t in done if t.signature) - len(same)
    return Tally(len(done), len(same), other, done[-1].exit_code if done else 0, tuple(t.run_dir for t in done))


def repro_tries(run_dir_path: str, *, tries: int, store: str | None = None,
                on_try: Callable[[int, ReproTry], None] | None = None) -> Tally:
    """Run the stored test ``tries`` times (each a new run dir, as ``splitbrain repro`` makes one), stopping
    early only when a try was interrupted by a signal (the user asked to stop)."""
    import json
    from pathlib import Path

    from splitbrain.harness.run import repro_test, run
    from splitbrain.harness.store import RunDir

    run_dir = RunDir(Path(run_dir_path))
    results_file = Path(run_dir_path) / "results.json"
    stored = signature_of(json.loads(results_file.read_text())) if results_file.is_file() else frozenset()
    done: list[ReproTry] = []
    for number in range(1, tries + 1):
        outcome = run(repro_test(run_dir, store))  # built afresh: a Test is run once
        failed = signature_of(outcome.results) if outcome.valid is False else frozenset()
        done.append(ReproTry(failed, outcome.exit_code, str(outcome.run_dir.path)))
        if on_try is not None:
            on_try(number, done[-1])
        if outcome.interrupted:
            break
    return tally(stored, done)


__all__: Sequence[str] = ("ReproTry", "Tally", "repro_tries", "tally")
