"""Running a test: ``run(test) -> RunOutcome``.

    validate (nothing exists yet) -> run directory, test.json, reaper -> nodes up -> nemeses, target set
    up, clients open -> operations under faults, heal, recovery, final reads -> tear down -> check ->
    results.json -> verdict

Whatever happens (an error, SIGINT/SIGTERM/SIGHUP, a second one) every fault is healed, every process
stopped and every node removed before ``run`` returns (harness/stopping.py); if the harness itself dies,
its reaper does it (harness/reaper.py). Every random choice comes from the test's seed: the fault
schedule is drawn from it before the run starts (and stored in test.json), the generators draw from one
Random seeded by it, the nemeses from another.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from splitbrain.control.clusters import Opened
from splitbrain.control.errors import ConfigError
from splitbrain.control.remote import NO_CGROUP_WARNING, cgroup_base
from splitbrain.control.target import TargetEnv, capabilities_of
from splitbrain.harness import interpreter
from splitbrain.harness.check_progress import check_progress
from splitbrain.harness.console import FaultTracker, LiveLine, verdict_lines
from splitbrain.harness.generator import (
    Once,
    Sleep,
    Stagger,
    Timed,
    TimeLimit,
    Until,
    any_,
    clients,
    nemesis,
    phases,
)
from splitbrain.harness.reaper import Reaper, dead_runs, remove_marker, write_marker
from splitbrain.harness.report import write_report
from splitbrain.harness.stopping import Interrupted, RunSignals
from splitbrain.harness.store import RunDir, attach_log, detach_log, new_run_dir
from splitbrain.harness.test import Test, check_capabilities, check_store
from splitbrain.harness.workloads import Workload
from splitbrain.histories.faults import HEAL
from splitbrain.histories.history import History
from splitbrain.histories.jsonl import JsonlWriter
from splitbrain.histories.op import Op
from splitbrain.nemesis.base import ComposedNemesis, NemesisContext, completed
from splitbrain.nemesis.schedule import Step, fault_schedule

log = logging.getLogger("splitbrain.run")

EXIT_VALID, EXIT_INVALID, EXIT_UNKNOWN, EXIT_BAD_INPUT, EXIT_RUN_FAILED = 0, 1, 2, 3, 4
_EXIT_OF = {True: EXIT_VALID, False: EXIT_INVALID, "unknown": EXIT_UNKNOWN}
READY_TIMEOUT_S = 30.0
# Per-request logs of the clients' libraries would drown the harness's own lines in harness.log.
QUIET_LOGGERS = ("httpx", "httpcore", "kazoo", "kazoo.client", "kazoo.protocol.connection", "paramiko")


@dataclass
class RunOutcome:
    """``valid`` of the checked history (true/false/"unknown"); ``results`` as in results.json;
    ``interrupted`` the signal's name when one stopped the run; ``error`` why the run failed, if it did."""

    valid: Any
    run_dir: RunDir
    results: dict[str, Any]
    interrupted: str | None = None
    error: str | None = None
    exit_code: int = EXIT_UNKNOWN


class HealingNemesis:
    """The run's nemeses, plus the op ``heal`` that heals all of them (the end of the fault phase)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def fs(self) -> set[str]:
        return self.inner.fs() | {HEAL}

    def setup(self, test: Any) -> None:
        self.inner.setup(test)

    def invoke(self, test: Any, op: Op) -> Op:
        log.info("nemesis %s %s", op.f, json.dumps(op.value, default=str))
        done = self._invoke(test, op)
        if done.error:
            log.warning("nemesis %s could not be applied: %s", op.f, done.error)
        else:
            log.info("nemesis %s done: %s", op.f, json.dumps(done.value, default=str))
        return done

    def _invoke(self, test: Any, op: Op) -> Op:
        if op.f == HEAL:
            try:
                self.inner.heal(test)
            except Exception as e:  # noqa: BLE001 - reported in the history and the log; heal is retried at the end
                return completed(op, None, error=f"heal failed: {e}")
            return completed(op, "healed")
        return self.inner.invoke(test, op)

    def heal(self, test: Any) -> None:
        self.inner.heal(test)

    def teardown(self, test: Any) -> None:
        self.inner.teardown(test)


def schedule_of(test: Test) -> list[Step]:
    """The test's fault schedule: the stored one (repro), else drawn from its seed."""
    if test.schedule is not None:
        return list(test.schedule)
    from splitbrain.control.local import node_names

    return fault_schedule(test.nemesis, node_names(test.nodes.count), interval_s=test.nemesis_interval,
                          duration_s=test.time_limit, rng=random.Random(test.seed * 31 + 7))


def _generator(test: Test, workload: Workload, steps: list[Step], signals: RunSignals) -> Any:
    timed = Timed(tuple((int(s.at_s * 1e9), {"f": s.f, "value": s.value}) for s in steps))
    main = Until(signals.end_main.is_set,
                 any_(clients(TimeLimit(test.time_limit, Stagger(1.0 / test.rate, workload.generator))),
                      nemesis(timed)))
    stages: list[Any] = [main, nemesis(Once({"f": HEAL, "value": None})),
                         Until(signals.hurry.is_set, Sleep(test.recovery_s))]
    if workload.final is not None:
        stages.append(Until(signals.hurry.is_set, clients(workload.final)))
    return phases(*stages)


@dataclass
class _Parts:
    """What a run has made so far (torn down in reverse, whatever exists)."""

    opened: Opened | None = None
    nemesis: Any = None
    target: Any = None
    clients: dict[int, Any] = field(default_factory=dict)
    nodes_of: dict[int, str] = field(default_factory=dict)


def run(test: Test, *, console: bool = True, out: Any = None) -> RunOutcome:
    """Run ``test`` end to end. Raises ConfigError (HostError) before anything exists when the test
    cannot run as given; otherwise returns its outcome, also when it was interrupted or failed."""
    out = out or sys.stdout
    workload = test.validate()
    store = check_store(test.store)
    if test.seed is None:
        test.seed = int(time.time_ns() % 1_000_000_007)
    try:
        steps = schedule_of(test)
    except ValueError as e:
        raise ConfigError(f"fault schedule: {e}") from None
    test.schedule = steps
    for dead in dead_runs(store):
        print(f"warning: {dead.run_dir} died and left {', '.join(dead.leftovers[:3])}"
              f"{' ...' if len(dead.leftovers) > 3 else ''}; `splitbrain cleanup {dead.run_dir}` removes it",
              file=sys.stderr)
    if test.nodes.remote == "local" and cgroup_base() is None:
        print(f"warning: {NO_CGROUP_WARNING}", file=sys.stderr)

    signals = RunSignals().install()  # from here on a signal never leaves anything half made
    try:
        run_dir = new_run_dir(store, test.test_name)
        handler = attach_log(run_dir)
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            nodes_json = test.nodes.to_json()
            write_marker(run_dir.path, run_dir.run_id, nodes_json)
            reaper = Reaper.launch(run_dir.path, run_dir.run_id, nodes_json)
            try:
                return _run_in(test, workload, steps, run_dir, signals, console, out)
            finally:
                reaper.release()
        finally:
            detach_log(handler)
    finally:
        signals.restore()


def _run_in(test: Test, workload: Workload, steps: list[Step], run_dir: RunDir, signals: RunSignals,
            console: bool, out: Any) -> RunOutcome:
    run_dir.write_test(test.to_json())
    print(f"seed {test.seed}  run {run_dir.path}", file=out, flush=True)
    if test.repro_of:
        print(f"reproducing {test.repro_of}", file=out, flush=True)
    log.info("test %s", json.dumps(test.to_json()))

    recorder = interpreter.ListRecorder()
    stats = interpreter.Stats()
    writer = JsonlWriter(str(run_dir.history_file))
    recorder.sink = FaultTracker(stats, writer.write).append
    recorder.flush_sink = writer.flush
    parts = _Parts()
    live = LiveLine(stats, console)
    error: str | None = None
    bad_input = False
    try:
        _set_up(test, workload, run_dir, parts)
        signals.phase = "running"
        live.start()
        interpreter.run(test, _generator(test, workload, steps, signals), clients=parts.clients,
                        nemesis=parts.nemesis, recorder=recorder, rng=random.Random(test.seed), nodes_of=parts.nodes_of,
                        stop=signals.hurry, stats=stats, drain_timeout=test.client_timeout_s * 3, hurry=signals.hurry)
    except Interrupted:
        pass  # the handler said so; what exists is torn down below
    except ConfigError as e:  # found only once the nodes were reached (a host key, a login): bad input
        error, bad_input = str(e), True
        log.error("the run cannot go on as configured: %s", error)
    except Exception as e:  # noqa: BLE001 - the run failed: why goes to harness.log and results.json
        error = f"{type(e).__name__}: {e}"
        log.error("the run failed: %s\n%s", error, traceback.format_exc())
    finally:
        signals.phase = "teardown"
        live.stop()
        _tear_down(test, parts)
        writer.close()
    remove_marker(run_dir.path)
    return _conclude(test, workload, run_dir, recorder.ops, signals, error, bad_input, out)


def _set_up(test: Test, workload: Workload, run_dir: RunDir, parts: _Parts) -> None:
    opened = test.nodes.open(run_dir.run_id, run_dir.path)
    parts.opened = opened
    cluster = opened.cluster
    cluster.up()
    nemesis_rng = random.Random(test.seed * 7919 + 1)
    ctx = NemesisContext({n: cluster.remote(n) for n in cluster.nodes}, cluster.addresses, nemesis_rng)
    nemeses = [kind.nemesis(ctx) for kind in test.nemesis]
    clock = next((n for n in nemeses if callable(getattr(n, "register", None))
                  and callable(getattr(n, "offset_ns", None))), None)  # skews the processes it is given
    env = TargetEnv(test, cluster.addresses, opened.spawner(clock), opened.files, opened.data_root, test.options)
    target = test.target.build(env)
    parts.target = target
    ctx.target = target
    if test.target.target_type is None:  # not known before: the built object tells
        check_capabilities(test.target.name, capabilities_of(target), test.nemesis)
    with ThreadPoolExecutor(max_workers=len(cluster.nodes)) as pool:
        list(pool.map(lambda n: target.setup(test, n), cluster.nodes))
    if callable(getattr(target, "wait_ready", None)):
        target.wait_ready(test, READY_TIMEOUT_S)
    parts.nemesis = HealingNemesis(ComposedNemesis(nemeses))
    parts.nemesis.setup(test)
    opener = test.client_opener(workload)
    parts.nodes_of = {t: cluster.nodes[t % len(cluster.nodes)] for t in range(test.concurrency)}
    for t in range(test.concurrency):
        parts.clients[t] = opener(test, target, parts.nodes_of[t])


def _tear_down(test: Test, parts: _Parts) -> None:
    """Heal, close, stop, remove: each step runs even when an earlier one fails."""
    steps: list[tuple[str, Any]] = []
    if parts.nemesis is not None:
        steps.append(("heal the nemesis", lambda: parts.nemesis.heal(test)))
    steps += [(f"close client {t}", partial(c.close, test)) for t, c in parts.clients.items()]
    if parts.target is not None and parts.opened is not None:
        steps += [(f"stop the target on {n}", partial(parts.target.teardown, test, n))
                  for n in parts.opened.cluster.nodes]
    if parts.nemesis is not None:  # after the target: e.g. a file system under its data comes off
        steps.append(("tear down the nemesis", lambda: parts.nemesis.teardown(test)))
    if parts.opened is not None:
        steps.append(("remove the nodes", parts.opened.cluster.down))
    for what, step in steps:
        try:
            step()
        except Exception as e:  # noqa: BLE001 - keep tearing down; the run's log says what failed
            log.error("teardown: could not %s: %s", what, e)


def _conclude(test: Test, workload: Workload, run_dir: RunDir, ops: list[Op], signals: RunSignals,
              error: str | None, bad_input: bool, out: Any) -> RunOutcome:
    with check_progress("the history"):
        result = workload.check(History(ops, str(run_dir.history_file)))
    results = result.to_json()
    interrupted = None
    if signals.signum is not None:
        import signal as signal_names

        interrupted = signal_names.Signals(signals.signum).name
        results["interrupted"] = True
        results["interrupted_by"] = interrupted
    if error is not None:
        results["error"] = error
    run_dir.write_results(results)
    for line in verdict_lines(results, test.seed, run_dir.path, interrupted):
        print(line, file=out)
    write_report(run_dir, out=out)  # also for interrupted and failed runs: what there is
    if error is not None:
        print(f"error: {error}" if bad_input else f"error: the run failed: {error}", file=sys.stderr)
        code = EXIT_INVALID if result.valid is False else EXIT_BAD_INPUT if bad_input else EXIT_RUN_FAILED
    else:
        code = signals.exit_code(result.valid) or _EXIT_OF[result.valid]
    return RunOutcome(result.valid, run_dir, results, interrupted, error, code)


def analyze(run_dir: RunDir) -> RunOutcome:
    """Check a stored run's history again with its workload's checkers. The run's own results.json is
    never touched: this result goes to analysis.json beside it."""
    from splitbrain.harness.test import TestOptions
    from splitbrain.histories.jsonl import read_jsonl_prefix

    options = TestOptions.from_json(run_dir.read_test(), str(run_dir.test_file))
    test = options.build()
    if not run_dir.history_file.exists():
        raise ConfigError(f"{run_dir.history_file}: no history in this run directory")
    history, dropped = read_jsonl_prefix(str(run_dir.history_file))
    result = test.make_workload().check(history)
    results = result.to_json()
    if dropped:
        results["dropped_last_line"] = dropped
    run_dir.write_json("analysis.json", results)
    write_report(run_dir)
    code = _EXIT_OF[result.valid]
    return RunOutcome(result.valid, run_dir, results, None, None, code)


def repro_test(run_dir: RunDir, store: str | None = None) -> Test:
    """The test of a stored run, to run again with the same seed and the same fault schedule."""
    from splitbrain.harness.test import TestOptions

    options = TestOptions.from_json(run_dir.read_test(), str(run_dir.test_file))
    options.repro_of = str(run_dir.path)
    if store is not None:
        options.store = store
    return options.build()
