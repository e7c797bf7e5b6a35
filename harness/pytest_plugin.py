"""splitbrain in a user's own pytest suite: the ``splitbrain`` fixture (installed with splitbrain, entry
point ``pytest11``). It does nothing unless a test asks for it, so other suites never notice it.

    def test_my_store_is_linearizable(splitbrain):
        splitbrain.assert_valid(target="mystore", workload="register", nemesis="partition,kill",
                                time_limit=10, nodes=3, seed=1)

    def test_the_bug_is_found(splitbrain):
        splitbrain.assert_finds_bug(target="raft", bugs="stale-read", nemesis="partition", within=4)

A failed assertion says the verdict, the seed, the checker's reason, the report's path and the command
that replays the run. Runs go to ``--splitbrain-store DIR`` (default: the test's tmp_path/runs). Every
run heals and removes what it made on its own, on failure and on Ctrl-C too; after each test the
fixture makes sure of it (what a run left is removed, by that run's id only) and a Ctrl-C during a run
ends the session as pytest's own Ctrl-C does. docs/pytest.md has the whole of it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

LABELS = {True: "VALID", False: "INVALID", "unknown": "UNKNOWN"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("splitbrain")
    group.addoption("--splitbrain-store", default=None, metavar="DIR",
                    help="where the splitbrain fixture's runs go (default: each test's tmp_path/runs)")


class SplitbrainFixture:
    """What the ``splitbrain`` fixture gives a test: ``run``, ``assert_valid``, ``assert_finds_bug``."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.outcomes: list[Any] = []

    # -- building a test ---------------------------------------------------------------------------------

    def test(self, test: Any = None, **options: Any) -> Any:
        """A Test from a Test, a TestOptions, or `splitbrain run`'s options as keywords (target, workload,
        nemesis "partition,kill", nodes, time_limit, seed, bugs, options={target option: value}, ...)."""
        from splitbrain.harness.test import Test, TestOptions

        if isinstance(test, Test):
            if set(options) - {"seed"}:
                raise TypeError("give a Test or keyword options, not both (a seed aside)")
            # a copy: a run fills in its test's seed and schedule, and the next run must draw its own
            built = dataclasses.replace(test, seed=options.get("seed", test.seed))
        elif isinstance(test, TestOptions):
            built = TestOptions.from_json({**test.to_json(), **options}).build()
        elif test is None:
            built = _options(options).build()
        else:
            raise TypeError(f"expected a Test, a TestOptions or keyword options, got {type(test).__name__}")
        built.store = str(self.store)
        return built

    # -- running -------------------------------------------------------------------------------------------

    def run(self, test: Any = None, **options: Any) -> Any:
        """Run the test once; its RunOutcome (``valid``, ``run_dir``, ``results``, ``exit_code``)."""
        from splitbrain.harness.run import run

        built = self.test(test, **options)
        outcome = run(built, console=False)
        outcome.seed = built.seed  # type: ignore[attr-defined]
        self.outcomes.append(outcome)
        if outcome.interrupted:
            _stop_session(outcome.interrupted)
        return outcome

    def assert_valid(self, test: Any = None, *, seeds: Iterable[int] | None = None, **options: Any) -> list[Any]:
        """Run once per seed (default: the given seed, else 1); fails at the first run that is not valid."""
        outcomes = []
        for seed in _seeds(seeds, options, test):
            outcome = self.run(test, **{**options, "seed": seed})
            outcomes.append(outcome)
            if outcome.valid is not True or outcome.error:
                pytest.fail(failure_message("expected valid", outcome), pytrace=False)
        return outcomes

    def assert_finds_bug(self, test: Any = None, *, within: int | None = None, seeds: Iterable[int] | None = None,
                         **options: Any) -> Any:
        """Run seeds 1..``within`` (or ``seeds``) until a run is invalid; fails when none is. Returns the
        outcome that found it."""
        if (within is None) == (seeds is None):
            raise TypeError("give within=K (seeds 1..K) or seeds=[...]")
        tried = []
        for seed in (range(1, within + 1) if within is not None else seeds):  # type: ignore[union-attr]
            outcome = self.run(test, **{**options, "seed": seed})
            if outcome.valid is False:
                return outcome
            tried.append(outcome)
        lines = ["expected the bug to be found (an invalid history) within "
                 f"{len(tried)} seed(s); none was invalid:"]
        for outcome in tried:
            lines.append(f"  seed {outcome.seed}: {_verdict(outcome)}  report: {_report(outcome)}")
        if tried:
            lines.append(f"  repro of the last: splitbrain repro {tried[-1].run_dir.path}")
        pytest.fail("\n".join(lines), pytrace=False)

    # -- after the test --------------------------------------------------------------------------------------

    def clean_up(self) -> list[str]:
        """Remove whatever a run of this test left (processes, namespaces, rules, containers), found by its
        run id; a run removes it all itself, so this finds something only when a run was cut short."""
        from splitbrain.harness.reaper import remove_marker
        from splitbrain.harness.test import nodes_of_record

        removed = []
        for run_dir in self.run_dirs():
            try:
                record = run_dir.read_test()
                left = nodes_of_record(record).cleanup(run_dir.run_id)
            except Exception as e:  # noqa: BLE001 - clean up the other runs all the same
                removed.append(f"{run_dir.path}: could not clean up: {e}")
                continue
            remove_marker(run_dir.path)
            removed += [f"{run_dir.path}: {item}" for item in left]
        return removed

    def run_dirs(self) -> Iterator[Any]:
        from splitbrain.harness.store import RunDir

        if self.store.is_dir():
            for test_json in sorted(self.store.glob("*/*/test.json")):
                yield RunDir(test_json.parent)


def _options(options: dict[str, Any]) -> Any:
    """TestOptions from keyword options (the plan's names: nemesis as "a,b" or a list, bugs, options)."""
    from splitbrain.harness.plan.model import SETTINGS, PlanError, nemesis_set
    from splitbrain.harness.test import TestOptions

    known = {"target", "workload", "nemesis", "seed", "options", "name", *SETTINGS}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}")
    fields: dict[str, Any] = {}
    for key, value in options.items():
        if key == "nemesis":
            try:
                value = nemesis_set(value, 0, ("nemesis",))
            except PlanError as e:
                raise TypeError(f"nemesis: {e.message}") from None
        elif key in ("bugs", "ssh_hosts") and isinstance(value, str):
            value = tuple(v.strip() for v in value.split(",") if v.strip())
        elif key == "options":
            key, value = "target_opts", {k: str(v) for k, v in value.items()}
        fields[SETTINGS.get(key, key)] = value
    return TestOptions(**fields)


def _seeds(seeds: Iterable[int] | None, options: dict[str, Any], test: Any) -> list[int]:
    if seeds is not None:
        return list(seeds)
    if "seed" in options:
        return [options["seed"]]
    return [test.seed] if getattr(test, "seed", None) is not None else [1]


def _verdict(outcome: Any) -> str:
    label = LABELS.get(outcome.valid, "UNKNOWN")
    if outcome.error:
        label += f" (the run failed: {outcome.error})"
    return label


def _report(outcome: Any) -> str:
    report = outcome.run_dir.path / "report.html"
    return str(report) if report.is_file() else str(outcome.run_dir.path)


def failure_message(expected: str, outcome: Any) -> str:
    from splitbrain.harness.junit import first_line

    results = outcome.results or {}
    lines = [f"{expected}, got {_verdict(outcome)}",
             f"  seed: {getattr(outcome, 'seed', results.get('seed'))}"]
    reason = first_line(results.get("explanation") or "")
    if reason:
        lines.append(f"  reason: {reason}")
    lines += [f"  report: {_report(outcome)}", f"  repro: splitbrain repro {outcome.run_dir.path}"]
    return "\n".join(lines)


def _stop_session(signal_name: str) -> None:
    """A run stopped by a signal (it healed and cleaned up): the session ends as pytest's own Ctrl-C."""
    if signal_name == "SIGINT":
        raise KeyboardInterrupt
    pytest.exit(f"splitbrain: the run was stopped by {signal_name}", returncode=1)


@pytest.fixture
def splitbrain(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SplitbrainFixture]:
    """Run splitbrain tests from a test: ``splitbrain.assert_valid(...)``, ``splitbrain.assert_finds_bug(...)``."""
    option = request.config.getoption("--splitbrain-store")
    store = Path(option).absolute() / request.node.name if option else tmp_path / "runs"
    fixture = SplitbrainFixture(store)
    try:
        yield fixture
    finally:
        left = fixture.clean_up()
        if left:
            import warnings

            warnings.warn("splitbrain: removed what a run left: " + "; ".join(left[:5]), stacklevel=1)
