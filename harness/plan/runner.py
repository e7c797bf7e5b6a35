"""Running a plan: ``run_plan(plan, parallel=K, ...) -> PlanResult``.

    cells (overrides: --test-count, --pass-policy, --only) -> preflight (nothing started yet)
    -> the plan folder STORE/PLAN/<time>-<hex>/ {plan.toml, index.json, summary.txt, junit.xml,
       runs/<test>/<run dirs>, console/<run>.log, jobs/}
    -> each run in a process of its own (harness/plan/child.py), K at a time, in the plan's order; a test
       whose policy is already met starts no more runs; index.json rewritten after every run
    -> verdicts per test, failures grouped, summary, JUnit

Each run is a whole `splitbrain run`: its own run id, namespaces, subnet (chosen under a lock), cgroups,
container names and reaper, so runs side by side never see each other. SIGINT/SIGTERM/SIGHUP stop the
plan: no run is started any more and the signal is passed on to each running run, which heals and
cleans up as it would alone (a second signal makes them hurry); then the index, the summary and the
JUnit file are written for what ran.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from splitbrain.control.errors import ConfigError
from splitbrain.harness.junit import check_junit_path, first_line, junit_xml, write_junit
from splitbrain.harness.plan import progress
from splitbrain.harness.plan.model import PASS, POLICIES, Cell, Plan, PlanError, cells, located
from splitbrain.harness.plan.preflight import preflight
from splitbrain.harness.plan.results import DONE, PENDING, RUNNING, SKIPPED_RUN, PlanResult, RunRecord
from splitbrain.harness.plan.signature import signatures
from splitbrain.harness.stopping import RunSignals
from splitbrain.harness.test import TestOptions, check_store

MAX_PARALLEL = 64
POLL_S = 0.2
HEARTBEAT_S = 30.0
# A run that goes on this long past its planned time is stopped (SIGTERM: it heals and cleans up), and
# killed if it still has not ended GRACE_S later (its reaper removes what it left).
OVERDUE_S = 600.0
GRACE_S = 120.0


@dataclass
class Job:
    """One run to make: its record, its cell, the options it runs with, and its files."""

    number: int
    record: RunRecord
    cell: Cell
    options: TestOptions
    spec_file: Path
    outcome_file: Path
    console_file: Path

    @property
    def planned_s(self) -> float:
        return self.options.time_limit + self.options.recovery_s


class Handle(Protocol):
    def poll(self) -> dict[str, Any] | None:
        """The run's outcome once it has ended (child.py's OUTCOME), else None."""

    def signal(self, signum: int) -> None: ...


class Launcher(Protocol):
    def start(self, job: Job) -> Handle: ...


class ChildHandle:
    def __init__(self, job: Job, process: subprocess.Popen[bytes], console: Any) -> None:
        self.job, self.process, self.console = job, process, console
        self.deadline = time.monotonic() + job.planned_s + OVERDUE_S
        self.killed_at: float | None = None

    def poll(self) -> dict[str, Any] | None:
        code = self.process.poll()
        if code is None:
            self._watch()
            return None
        self.console.close()
        try:
            outcome = json.loads(self.job.outcome_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            outcome = {"run_dir": _run_dir_in_console(self.job.console_file), "valid": None,
                       "error": f"the run's process ended (exit {code}) without saying how the run went; "
                                f"its console: {self.job.console_file}"}
        outcome.setdefault("exit_code", code)
        return outcome

    def _watch(self) -> None:
        now = time.monotonic()
        if self.killed_at is None and now > self.deadline:
            self.killed_at = now
            self.signal(signal.SIGTERM)
        elif self.killed_at is not None and now > self.killed_at + GRACE_S:
            self.process.kill()

    def signal(self, signum: int) -> None:
        try:
            self.process.send_signal(signum)
        except ProcessLookupError:
            pass


class ChildLauncher:
    """Each run in a process of its own session (a terminal's Ctrl-C reaches the plan, which passes it
    on once: a run never gets the same signal twice)."""

    def start(self, job: Job) -> Handle:
        job.spec_file.write_text(json.dumps(job.options.to_json(), indent=2) + "\n")
        console = open(job.console_file, "wb")  # noqa: SIM115 - closed by the handle when the run ends
        process = subprocess.Popen(
            [sys.executable, "-m", "splitbrain.harness.plan.child", str(job.spec_file), str(job.outcome_file)],
            stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, start_new_session=True)
        return ChildHandle(job, process, console)


def _run_dir_in_console(path: Path) -> str | None:
    """The run directory a run printed first ("seed N  run DIR"), when it could not say more."""
    try:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("seed ") and "  run " in line:
                return line.split("  run ", 1)[1].strip()
    except OSError:
        pass
    return None


class PlanSignals(RunSignals):
    """The plan's stop flag, set by SIGINT/SIGTERM/SIGHUP (installed and restored as a run's are), each
    signal passed on to the running runs."""

    def __init__(self, out: Any) -> None:
        super().__init__(out)
        self.count = 0  # signals received
        self.handles: list[Handle] = []

    def _on_signal(self, signum: int, frame: Any) -> None:
        first = self.signum is None
        self.count += 1
        if first:
            self.signum = signum
        name = signal.Signals(signum).name
        what = ("no more runs start; the running ones heal, clean up and are checked (again to make them "
                "hurry)" if first else "the running runs skip their waits; healing and clean-up still happen")
        self._say(f"\n{name}: {what}")
        for handle in list(self.handles):
            handle.signal(signum)


# -- what a run left ---------------------------------------------------------------------------------------------

def _history_f(history: Path) -> Callable[[int], str | None]:
    """The ``f`` of the history's op at an index (read once, only when a signature needs it)."""
    cache: dict[int, str] = {}

    def f_at(index: int) -> str | None:
        if not cache and history.is_file():
            with history.open(encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    try:
                        op = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(op, dict) and isinstance(op.get("index"), int):
                        cache[op["index"]] = str(op.get("f", ""))
        return cache.get(index)

    return f_at


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record_outcome(record: RunRecord, cell: Cell, outcome: dict[str, Any], took_s: float) -> None:
    """Fill ``record`` from what the run's process said and what its run directory holds."""
    record.status = DONE
    record.duration_s = round(took_s, 3)
    record.run_dir = outcome.get("run_dir")
    record.exit_code = outcome.get("exit_code")
    record.interrupted = bool(outcome.get("interrupted"))
    record.error = outcome.get("error")
    results = _read_json(Path(record.run_dir) / "results.json") if record.run_dir else {}
    record.valid = results.get("valid", outcome.get("valid"))
    if record.valid is None:
        record.valid = "unknown"
        if record.error is None and not record.interrupted:
            record.error = f"the run left no results (exit {record.exit_code})"
    record.reason = first_line(results.get("explanation") or record.error or "")
    record.ops = (results.get("stats") or {}).get("count")
    schedule = _read_json(Path(record.run_dir) / "test.json").get("schedule") if record.run_dir else None
    record.faults = len(schedule) if isinstance(schedule, list) else None
    if record.run_dir:
        record.signatures = signatures(results, cell.target, _history_f(Path(record.run_dir) / "history.jsonl"))


# -- the plan run ---------------------------------------------------------------------------------------------

def select(plan_cells: Sequence[Cell], *, test_count: int | None = None, pass_policy: str | None = None,
           only: Sequence[str] | None = None) -> list[Cell]:
    """The cells with the command line's overrides: every test ``test_count`` times, with ``pass_policy``,
    only those whose name (or test's name) matches one of the ``only`` patterns (shell-style)."""
    if test_count is not None and (isinstance(test_count, bool) or not isinstance(test_count, int)
                                   or not 1 <= test_count <= 10_000):
        raise ConfigError(f"--test-count must be a whole number from 1 to 10000, got {test_count!r}")
    if pass_policy is not None and pass_policy not in POLICIES:
        raise ConfigError(f"--pass-policy must be one of {', '.join(POLICIES)}, got {pass_policy!r}")
    chosen = list(plan_cells)
    if only:
        chosen = [c for c in chosen if any(fnmatch.fnmatchcase(c.name, p) or fnmatch.fnmatchcase(c.test, p)
                                           for p in only)]
        if not chosen:
            names = ", ".join(c.name for c in plan_cells)
            raise ConfigError(f"--only {' '.join(only)}: matches none of the plan's tests ({names})")
    changes: dict[str, Any] = {}
    if test_count is not None:
        changes["count"] = test_count
    if pass_policy is not None:
        changes["policy"] = pass_policy
    return [dataclasses.replace(c, **changes) for c in chosen]


def new_plan_dir(store: Path, plan: str) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    while True:
        path = store / plan / f"{stamp}-{secrets.token_hex(2)}"
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue


def prepare(plan: Plan, *, parallel: int = 1, test_count: int | None = None, pass_policy: str | None = None,
            only: Sequence[str] | None = None) -> list[Cell]:
    """The cells to run, every one checked: ConfigError (with file and line for a TOML plan) before
    anything exists."""
    if isinstance(parallel, bool) or not isinstance(parallel, int) or not 1 <= parallel <= MAX_PARALLEL:
        raise ConfigError(f"--parallel must be a whole number from 1 to {MAX_PARALLEL}, got {parallel!r}")
    try:
        plan_cells = cells(plan)
    except PlanError as e:
        raise located(plan, e) from None
    chosen = select(plan_cells, test_count=test_count, pass_policy=pass_policy, only=only)
    preflight(plan, chosen, parallel)
    return chosen


def run_plan(plan: Plan, *, parallel: int = 1, test_count: int | None = None, pass_policy: str | None = None,
             only: Sequence[str] | None = None, junit: str | os.PathLike[str] | None = None,
             store: str | None = None, out: Any = None, launcher: Launcher | None = None) -> PlanResult:
    """Run every test of ``plan`` (ConfigError before anything starts when one cannot run). The result's
    ``exit_code``: 0 every test met its expectation, 1 one did not, 4 the harness failed on one, 2 one
    is only unknown; 128 + the signal when the plan was stopped and nothing failed."""
    out = out or sys.stdout
    chosen = prepare(plan, parallel=parallel, test_count=test_count, pass_policy=pass_policy, only=only)
    if junit is not None:
        check_junit_path(junit)
    root = check_store(store or plan.store)
    plan_dir = new_plan_dir(root, plan.name)
    for folder in ("runs", "console", "jobs"):
        (plan_dir / folder).mkdir()
    if plan.source and Path(plan.source).is_file():
        (plan_dir / "plan.toml").write_bytes(Path(plan.source).read_bytes())
    result = PlanResult(plan.name, plan.source, plan_dir, chosen, {c.name: [] for c in chosen}, parallel)
    jobs: deque[Job] = deque()
    for cell in chosen:
        for seed in cell.seeds:
            for repeat in range(1, cell.count + 1):
                record = RunRecord(cell.name, seed, repeat, cell.expect)
                result.records[cell.name].append(record)
                n = len(jobs) + 1
                stem = f"{n:04d}-{cell.name}-seed{seed}-{repeat}"[:120]
                record.console = str(plan_dir / "console" / f"{stem}.log")
                jobs.append(Job(n, record, cell, cell.test_options(seed, str(plan_dir / "runs")),
                                plan_dir / "jobs" / f"{stem}.json", plan_dir / "jobs" / f"{stem}.outcome.json",
                                Path(record.console)))
    _write_index(result)
    total = len(jobs)
    print(f"plan {plan.name}: {len(chosen)} test(s), {total} run(s), {parallel} at a time -> {plan_dir}",
          file=out, flush=True)
    signals = PlanSignals(out).install()
    try:
        _execute(result, jobs, total, parallel, launcher or ChildLauncher(), signals, out)
    except BaseException:
        _stop_running(signals.handles)  # the plan itself failed: its runs must not outlive it
        raise
    finally:
        signals.restore()
    if signals.signum is not None:
        result.interrupted_signum = signals.signum
        result.interrupted_by = signal.Signals(signals.signum).name
    result.finished = dt.datetime.now(dt.UTC)
    _write_index(result)
    junit_text = junit_xml(plan.name, result.junit_cases(), timestamp=result.started,
                           time_s=(result.finished - result.started).total_seconds(),
                           properties={"plan_dir": str(plan_dir), "source": plan.source or "python"})
    write_junit(plan_dir / "junit.xml", junit_text)
    if junit is not None:
        write_junit(junit, junit_text)
    lines = result.summary_lines(str(junit) if junit is not None else None)
    (plan_dir / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), file=out, flush=True)
    return result


def _stop_running(handles: Sequence[Handle]) -> None:
    """SIGTERM to each running run (it heals and cleans up), SIGKILL to one still there GRACE_S later
    (its reaper removes what it left)."""
    for handle in handles:
        handle.signal(signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    left = list(handles)
    while left and time.monotonic() < deadline:
        left = [h for h in left if h.poll() is None]
        time.sleep(POLL_S)
    for handle in left:
        handle.signal(signal.SIGKILL)


def _write_index(result: PlanResult) -> None:
    target = result.plan_dir / "index.json"
    tmp = target.with_name(".index.json.tmp")
    tmp.write_text(json.dumps(result.to_json(), indent=2, default=str) + "\n")
    os.replace(tmp, target)


def _execute(result: PlanResult, jobs: deque[Job], total: int, parallel: int, launcher: Launcher,
             signals: PlanSignals, out: Any) -> None:
    running: dict[int, tuple[Job, Handle, float]] = {}
    finished: list[tuple[float, float]] = []  # (planned, took) of each run done
    done = 0
    last_said = time.monotonic()

    def say(text: str) -> None:
        nonlocal last_said
        last_said = time.monotonic()
        try:
            print(text, file=out, flush=True)
        except (OSError, ValueError):
            pass  # a closed terminal must not stop the plan

    def eta() -> float:
        now = time.monotonic()
        return progress.eta_s([j.planned_s for j in jobs], [(j.planned_s, now - t) for j, _, t in running.values()],
                              finished, parallel)

    while jobs or running:
        while jobs and len(running) < parallel and signals.signum is None:
            job = jobs.popleft()
            cell = job.cell
            if result.verdict(cell) == PASS:  # its policy is met: more runs cannot change the verdict
                job.record.status = SKIPPED_RUN
                done += 1
                continue
            job.record.status = RUNNING
            seen = signals.count
            handle = launcher.start(job)
            running[job.number] = (job, handle, time.monotonic())
            signals.handles.append(handle)
            if signals.count != seen and signals.signum is not None:  # it came while the run was starting
                handle.signal(signals.signum)
            say(f"{progress.counter(done, total)} start {job.record.label}  ({cell.describe()})  "
                f"{progress.tail(done, total, eta())}")
        ended = False
        for number, (job, handle, started) in list(running.items()):
            outcome = handle.poll()
            if outcome is None:
                continue
            ended = True
            took = time.monotonic() - started
            del running[number]
            signals.handles.remove(handle)
            record_outcome(job.record, job.cell, outcome, took)
            finished.append((job.planned_s, took))
            done += 1
            _write_index(result)
            mark = "as expected" if job.record.outcome == "met" else job.record.outcome
            say(f"{progress.counter(done, total)} {job.record.verdict_text()} ({mark})  {job.record.label}  "
                f"{took:.1f} s  {job.record.run_dir or job.record.console}  {progress.tail(done, total, eta())}")
        if signals.signum is not None and not running:
            for job in jobs:
                job.record.status = PENDING  # not run: the plan was stopped
            return
        if not ended:
            if running and time.monotonic() - last_said > HEARTBEAT_S:
                now = time.monotonic()
                names = ", ".join(f"{j.record.label} ({now - t:.0f} s)" for j, _, t in running.values())
                say(f"{progress.counter(done, total)} running {names}  {progress.tail(done, total, eta())}")
            time.sleep(POLL_S)
