"""The `splitbrain` command line: one clear line and a meaningful exit code for every outcome.

Exit codes: 0 valid, 1 invalid, 2 unknown, 3 bad input or usage, 4 the run itself failed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from splitbrain.checkers.result import Result, merge_validity
from splitbrain.control.errors import ConfigError, HostError, RemoteError
from splitbrain.histories.errors import HistoryFormatError

EXIT_VALID, EXIT_INVALID, EXIT_UNKNOWN, EXIT_BAD_INPUT, EXIT_RUN_FAILED = 0, 1, 2, 3, 4
_EXIT_OF = {True: EXIT_VALID, False: EXIT_INVALID, "unknown": EXIT_UNKNOWN}


class UsageError(Exception):
    """Bad command-line usage: printed as one line, exit 3."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse would exit 2, which means "unknown" here
        raise UsageError(f"{self.prog}: {message} (see --help)")


def parse_value(text: str, what: str) -> Any:
    """A JSON or EDN value given on the command line (``0``, ``nil``, ``'{"x": 0}'``, ``'{:x 0}'``)."""
    shown = text if len(text) <= 60 else text[:57] + "..."
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError:
        pass
    except (ValueError, RecursionError) as e:  # NaN, a number of thousands of digits, deep nesting
        raise UsageError(f"{what}: expected a JSON or EDN value, got {shown!r} ({_why(e)})") from None
    from splitbrain.histories.edn import parse_edn

    try:
        values = [v for v, _ in parse_edn(text, what)]
    except HistoryFormatError as e:
        raise UsageError(f"{what}: expected a JSON or EDN value, got {shown!r} ({e.message})") from None
    except (ValueError, RecursionError) as e:
        raise UsageError(f"{what}: expected a JSON or EDN value, got {shown!r} ({_why(e)})") from None
    if len(values) != 1:
        raise UsageError(f"{what}: expected one JSON or EDN value, got {shown!r}")
    return values[0]


def _why(e: Exception) -> str:
    from splitbrain.histories.jsonl import value_error_text

    return "nested too deeply" if isinstance(e, RecursionError) else value_error_text(e)  # type: ignore[arg-type]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a value a history can hold")


# -- check ---------------------------------------------------------------------------------------------

def _add_check(sub: Any) -> None:
    from splitbrain.checkers.models import MODEL_NAMES
    from splitbrain.checkers.registry import CHECKER_NAMES
    from splitbrain.histories.formats import FORMATS

    p = sub.add_parser("check", help="check recorded histories",
                       description="Check histories for linearizability (--model) or with another checker (--checker).")
    p.add_argument("histories", nargs="+", metavar="HISTORY")
    p.add_argument("--model", choices=MODEL_NAMES, help="linearizability against this model")
    p.add_argument("--checker", choices=CHECKER_NAMES, help="another checker (default: linearizable with --model)")
    p.add_argument("--init", help="the model's initial value, JSON or EDN (0, nil, '{\"x\": 0}')")
    p.add_argument("--nil-reads", choices=("value", "unknown"),
                   help="register models: is a read of nil a value, or a read that saw nothing (Knossos's "
                        "convention; the default when --init is not nil)")
    p.add_argument("--format", default="auto", choices=("auto",) + FORMATS)
    p.add_argument("--independent", action="store_true",
                   help="values are Jepsen independent [key value] tuples: check per key")
    p.add_argument("--time-limit", type=float, metavar="S", help="per file; past it the verdict is unknown")
    p.add_argument("--max-configs", type=int, metavar="N", help="memory bound of the linearizability search")
    p.add_argument("--consistency-model", metavar="M", help="list-append / rw-register: the model to check")
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    p.add_argument("--report", metavar="DIR", help="also write an HTML report per history: DIR/<name>.html")
    p.add_argument("--shrink", metavar="OUT", help="an invalid history: write its minimal failing sub-history "
                                                   "(JSON Lines, checkable like any history) to OUT")
    p.set_defaults(run=_run_check)


def _check_fn(args: argparse.Namespace) -> Callable[..., Result]:
    from splitbrain.checkers.registry import checker_named, linearizable_checker

    checker = args.checker or ("linearizable" if args.model else None)
    if checker is None:
        raise UsageError("check: give --model M (linearizability) or --checker C")
    if checker == "linearizable":
        if not args.model:
            raise UsageError("check: --checker linearizable needs --model M")
        initial = parse_value(args.init, "--init") if args.init is not None else None
        if args.time_limit is not None and not (math.isfinite(args.time_limit) and args.time_limit > 0):
            raise UsageError(f"check: --time-limit must be a positive number of seconds, got {args.time_limit}")
        if args.max_configs is not None and args.max_configs <= 0:
            raise UsageError(f"check: --max-configs must be a positive whole number, got {args.max_configs}")
        try:
            return linearizable_checker(args.model, initial, nil_reads=args.nil_reads,
                                        time_limit=args.time_limit, max_configs=args.max_configs)
        except ValueError as e:
            raise UsageError(f"check: {e}") from None
    if args.model:
        raise UsageError(f"check: --model goes with linearizability, not with --checker {checker}")
    try:
        return checker_named(checker, consistency_model=args.consistency_model)
    except ValueError as e:
        raise UsageError(f"check: {e}") from None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _run_check(args: argparse.Namespace) -> int:
    from splitbrain.harness.check_progress import check_progress
    from splitbrain.histories.formats import load_history
    from splitbrain.histories.history import lift_independent

    check = _check_fn(args)
    if args.shrink and len(args.histories) != 1:
        raise UsageError("check: --shrink OUT takes exactly one history")
    verdicts: list[Any] = []
    bad_input = 0
    reports: set[Any] = set()
    for path in args.histories:
        try:
            history = load_history(path, args.format)
            if args.independent:
                history = lift_independent(history)
            started = time.perf_counter()
            with check_progress(path):
                result = _checked(check, history, args.format)
            elapsed_ms = (time.perf_counter() - started) * 1000
        except (HistoryFormatError, ValueError) as e:
            bad_input += 1
            message = str(e) if isinstance(e, HistoryFormatError) else f"{path}: {e}"
            if args.json:
                print(json.dumps({"file": path, "valid": None, "error": message}))
            else:
                print(f"ERROR    {message}")
            continue
        verdicts.append(result.valid)
        report = _check_report(args, path, history, result, reports) if args.report else None
        if args.json:
            record = {"file": path, "valid": result.valid, "elapsed_ms": round(elapsed_ms, 3)}
            record.update(result.to_json())
            if report is not None:
                record["report"] = str(report)
            print(json.dumps(record, default=_json_default))
        else:
            label = {True: "VALID", False: "INVALID", "unknown": "UNKNOWN"}[result.valid]
            print(f"{label:<8} {path}  ({elapsed_ms:.1f} ms)")
            if result.valid is not True and result.explanation:
                print("\n".join("         " + line for line in result.explanation.strip().splitlines()))
            if report is not None:
                print(f"         report: {report}")
        if args.shrink:
            _shrink_evidence(check, history, result, args.shrink, quiet=args.json)
    if len(args.histories) > 1 and not args.json:
        counts = {v: sum(1 for x in verdicts if x is v or x == v) for v in (True, False, "unknown")}
        print(f"{len(args.histories)} histories: {counts[True]} valid, {counts[False]} invalid, "
              f"{counts['unknown']} unknown, {bad_input} unreadable")
    if bad_input:
        return EXIT_BAD_INPUT
    return _EXIT_OF[merge_validity(verdicts)]


def _shrink_evidence(check: Callable[..., Result], history: Any, result: Result, out: str, quiet: bool) -> None:
    """check --shrink OUT: the minimal sub-history that still fails (checkers/evidence.py) goes to OUT."""
    from splitbrain.checkers.evidence import shrink_evidence
    from splitbrain.histories.jsonl import write_jsonl

    if result.valid is not False:
        if not quiet:
            print(f"         --shrink: the history is not invalid; {out} not written")
        return
    evidence = shrink_evidence(history, check)
    write_jsonl(evidence.history, out)
    if not quiet:
        print(f"         {evidence.summary()}; written to {out}")
        print("\n".join("         " + line for line in evidence.result.explanation.strip().splitlines()))


def _checked(check: Callable[..., Result], history: Any, format: str) -> Result:
    """``check(history)``; a history with no client operations is unknown (nothing was tested: an empty
    file, or the wrong --format), and an op a model cannot read is named by its line."""
    from splitbrain.checkers.models import ModelError

    if not any(op.is_client for op in history):
        hint = f" (is --format {format} right?)" if format != "auto" else ""
        return Result("unknown", {"client_op_count": 0}, f"the history has no client operations{hint}")
    try:
        return check(history)
    except ModelError as e:
        position = next((pos for pos, op in enumerate(history) if op.index == e.index), None)
        line = history.line_of(position) if position is not None else None
        raise HistoryFormatError(history.source, line, e.message) from None
    except RecursionError:
        raise HistoryFormatError(history.source, None, "values nested too deeply to check") from None


def _check_report(args: argparse.Namespace, path: str, history: Any, result: Result, taken: set[Any]) -> Any:
    from splitbrain.harness.report.command import check_report

    checker = args.checker or "linearizable"
    options = [f"--{k.replace('_', '-')}={v}" for k, v in (("model", args.model), ("checker", args.checker),
               ("init", args.init), ("nil_reads", args.nil_reads), ("format", args.format),
               ("consistency_model", args.consistency_model)) if v not in (None, "auto")]
    command = ["splitbrain", "check", path, *options] + (["--independent"] if args.independent else [])
    return check_report(args.report, path, history, checker, result, command, taken)


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


# -- run / analyze / repro / cleanup ------------------------------------------------------------------------

RUN_EXIT_CODES = """exit codes: 0 valid, 1 invalid, 2 unknown (the checkers could not decide), 3 bad options (nothing was
started), 4 the run itself failed (a node or the target did not come up; the error is in results.json
and harness.log). A run stopped by SIGINT, SIGTERM or SIGHUP heals every fault and removes everything
it started, checks what it recorded and exits 1 if that is invalid, else 128 + the signal (130 SIGINT,
143 SIGTERM, 129 SIGHUP): an interrupted run never exits 0."""


def _add_run(sub: Any) -> None:
    from splitbrain.harness.plugins import names
    from splitbrain.nemesis.kinds import FAULT_KINDS
    from splitbrain.targets.raft.core import BUGS

    p = sub.add_parser("run", help="run a test: a real cluster under faults, then check its history",
                       description="Run a test of a target on local nodes (network namespaces; needs root), on "
                                   "Docker nodes (--remote docker) or on SSH hosts (--remote ssh) under faults, "
                                   "record the history, check it.",
                       epilog=RUN_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    targets = ", ".join(names("target"))
    p.add_argument("--target", default="raft", metavar="NAME",
                   help=f"the system under test: {targets} (`splitbrain targets` lists them with plugins), or "
                        "package.module:factory for a target that is not installed (default: raft)")
    p.add_argument("--read", metavar="MODE", help="target option: how reads are made (etcd: linearizable | "
                                                  "serializable; zookeeper: sync | local); default the target's")
    p.add_argument("--target-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="a target-specific option, repeatable (`splitbrain targets` lists each target's; default: the target's own)")
    p.add_argument("--workload", default="register", metavar="NAME",
                   help=f"what the clients do: {', '.join(names('workload'))}, or package.module:factory "
                        "(default: register)")
    p.add_argument("--workload-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="a workload option, repeatable (`splitbrain workloads` lists each workload's; default: the "
                        "workload's own)")
    p.add_argument("--consistency-model", metavar="MODEL",
                   help="workload option of list-append and rw-register: the model the history must satisfy "
                        "(default strict-serializable)")
    p.add_argument("--nemesis", default="all", metavar="KINDS",
                   help=f"the faults: a comma list of {', '.join(names('nemesis') or FAULT_KINDS)}, all (the "
                        f"network, process and clock faults: {', '.join(FAULT_KINDS)}; disk faults are named), or none "
                        "(default: all)")
    p.add_argument("--nodes", type=int, default=None, help="how many nodes (default 5, or the number of --ssh-hosts)")
    p.add_argument("--remote", default="local", choices=("local", "docker", "ssh"),
                   help="local: network namespaces on this machine (root); docker: containers from the node "
                        "image (`splitbrain images build`); ssh: real hosts (--ssh-hosts) (default: local)")
    p.add_argument("--ssh-hosts", metavar="NODE=HOST[:PORT],...",
                   help="with --remote ssh: the host of each node, node1..nodeN (default: none; required with ssh)")
    p.add_argument("--ssh-user", default="root", help="with --remote ssh: the login (default: root, for iptables and kill)")
    p.add_argument("--ssh-key", metavar="FILE", help="with --remote ssh: the private key (default: agent, ~/.ssh)")
    p.add_argument("--ssh-known-hosts", metavar="FILE",
                   help="with --remote ssh: the known host keys (default: ~/.ssh/known_hosts)")
    p.add_argument("--ssh-accept-new", action="store_true",
                   help="with --remote ssh: accept hosts whose key is not known (only for hosts the test created)")
    p.add_argument("--ssh-dir", default="/tmp", metavar="DIR",
                   help="with --remote ssh: the directory on the hosts under which a run keeps its files "
                        "(DIR/splitbrain-RUN_ID, removed at the end; default: /tmp)")
    p.add_argument("--time-limit", type=float, default=20.0, metavar="S",
                   help="seconds of operations under faults (default: 20)")
    p.add_argument("--nemesis-interval", type=float, default=3.0, metavar="S",
                   help="seconds between a fault and its healing, and between faults (default: 3)")
    p.add_argument("--concurrency", type=int, default=10, help="client workers (default: 10)")
    p.add_argument("--rate", type=float, default=100.0, metavar="R",
                   help="ops per second, all clients together (default: 100)")
    p.add_argument("--client-timeout", type=float, default=1.5, metavar="S",
                   help="seconds a client waits for an answer before the op is indeterminate (default: 1.5)")
    p.add_argument("--seed", type=int, help="the seed of every random choice (default: from the clock, printed)")
    p.add_argument("--bug", action="append", default=[], metavar="NAME",
                   help=f"switch on a deliberate bug of the Raft store, repeatable: {', '.join(sorted(BUGS))} "
                        "(default: none)")
    p.add_argument("--recovery", type=float, default=2.0, metavar="S",
                   help="seconds of calm after healing, before the final reads (default: 2)")
    p.add_argument("--store", default="runs", metavar="DIR", help="where run directories go (default: runs)")
    p.add_argument("--name", default="", help="the test's name, its folder in the store (default: TARGET-WORKLOAD)")
    p.add_argument("--junit", metavar="FILE", help="also write the verdict as JUnit XML (one test case) to FILE (default: none)")
    p.set_defaults(run=_run_run)


def _run_run(args: argparse.Namespace) -> int:
    from splitbrain.harness.test import TestOptions
    from splitbrain.nemesis.kinds import FAULT_KINDS, parse_kinds

    try:
        kinds = parse_kinds(args.nemesis)
    except ValueError as e:
        if "," in args.nemesis or args.nemesis.strip() in FAULT_KINDS:
            raise UsageError(f"run: --nemesis: {e}") from None
        kinds = _plugin_kinds(args.nemesis, e)
    target_opts: dict[str, Any] = _key_values(args.target_opt, "--target-opt")
    if args.read is not None:
        target_opts["read"] = args.read
    workload_opts = _key_values(args.workload_opt, "--workload-opt")
    if args.consistency_model is not None:
        workload_opts["consistency-model"] = args.consistency_model
    ssh_hosts = _ssh_hosts(args)
    nodes = args.nodes if args.nodes is not None else (len(ssh_hosts) if args.remote == "ssh" and ssh_hosts else 5)
    options = TestOptions(
        target=args.target, workload=args.workload, nemesis=kinds, nodes=nodes, remote=args.remote,
        time_limit=args.time_limit, nemesis_interval=args.nemesis_interval, concurrency=args.concurrency,
        rate=args.rate, seed=args.seed, bugs=tuple(args.bug), store=args.store, recovery_s=args.recovery,
        client_timeout_s=args.client_timeout, name=args.name, target_opts=target_opts,
        workload_opts=workload_opts, ssh_hosts=ssh_hosts,
        ssh_user=args.ssh_user, ssh_key=args.ssh_key, ssh_known_hosts=args.ssh_known_hosts,
        ssh_accept_new=args.ssh_accept_new, ssh_dir=args.ssh_dir)
    return _run_test(options.build(), args.junit)


def _key_values(items: list[str], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"run: {option} expects KEY=VALUE, got {item!r}")
        pairs[key] = value
    return pairs


def _plugin_kinds(spec: str, error: ValueError) -> tuple[str, ...]:
    """--nemesis naming fault kinds a plugin registered (besides the built-in ones)."""
    from splitbrain.harness.plugins import names

    known = set(names("nemesis"))
    kinds = tuple(k.strip() for k in spec.split(","))
    if not spec.strip() or not all(k in known or ":" in k for k in kinds):
        raise UsageError(f"run: --nemesis: {error}")
    return tuple(dict.fromkeys(kinds))


def _ssh_hosts(args: argparse.Namespace) -> tuple[str, ...]:
    """``--ssh-hosts`` as one ``node=host:port`` per node (what test.json stores); ConfigError when malformed."""
    if args.ssh_hosts is None:
        return ()
    from splitbrain.control.ssh import parse_ssh_hosts

    return tuple(str(h) for h in parse_ssh_hosts(args.ssh_hosts))


def _run_test(test: Any, junit: str | None = None) -> int:
    from splitbrain.harness.run import run

    if junit is None:
        return run(test).exit_code
    from splitbrain.harness.junit import check_junit_path, junit_xml, run_case, write_junit

    check_junit_path(junit)
    started = time.monotonic()
    outcome = run(test)
    case = run_case(outcome, test.test_name, test.seed, time.monotonic() - started)
    write_junit(junit, junit_xml(test.test_name, [case]))
    return outcome.exit_code


def _add_analyze(sub: Any) -> None:
    p = sub.add_parser("analyze", help="check a stored run's history again (results in analysis.json)",
                       description="Check a stored run's history again with its workload's checkers. The run's "
                                   "own results.json is never changed: the result goes to analysis.json beside "
                                   "it. A history whose last line is torn (the harness was killed mid-write) "
                                   "is checked up to that line.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory, e.g. runs/latest")
    p.set_defaults(run=_run_analyze)


def _run_analyze(args: argparse.Namespace) -> int:
    from splitbrain.harness.run import analyze
    from splitbrain.harness.store import open_run_dir

    outcome = analyze(open_run_dir(args.run_dir))
    dropped = outcome.results.get("dropped_last_line")
    if dropped:
        print(f"note: line {dropped} of the history is torn (the harness was killed while writing it): "
              "checked the lines before it")
    label = {True: "VALID", False: "INVALID", "unknown": "UNKNOWN"}[outcome.valid]
    print(f"{label}  {outcome.run_dir.path}  (analysis.json)")
    if outcome.valid is not True and outcome.results.get("explanation"):
        print(outcome.results["explanation"])
    if (outcome.run_dir.path / "report.html").is_file():
        print(f"report: {outcome.run_dir.path / 'report.html'}")
    return outcome.exit_code


def _add_repro(sub: Any) -> None:
    p = sub.add_parser("repro", help="run a stored test again: same options, seed and fault schedule",
                       epilog=RUN_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--store", metavar="DIR", help="where the new run goes (default: the stored test's)")
    p.add_argument("--tries", type=int, default=1, metavar="N",
                   help="run it N times, each its own run dir, and say how often it failed as the stored run did "
                        "(exit 1 if any did, else the last try's code)")
    p.set_defaults(run=_run_repro)


def _run_repro(args: argparse.Namespace) -> int:
    from splitbrain.harness.repro import repro_tries
    from splitbrain.harness.run import repro_test
    from splitbrain.harness.store import open_run_dir

    if args.tries < 1:
        raise UsageError(f"repro: --tries must be a whole number >= 1, got {args.tries}")
    run_dir = open_run_dir(args.run_dir)
    if args.tries == 1:
        return _run_test(repro_test(run_dir, args.store))
    counted = repro_tries(str(run_dir.path), tries=args.tries, store=args.store,
                          on_try=lambda n, t: print(f"repro: try {n} of {args.tries}: exit {t.exit_code}", flush=True))
    print(f"repro: {counted.summary()} (the stored run: {run_dir.path})")
    return counted.exit_code


def _add_shrink(sub: Any) -> None:
    p = sub.add_parser("shrink", help="search for a smaller failing run: fewer faults, shorter, fewer clients",
                       description="Re-run a failing run's test with faults removed, a shorter time limit and "
                                   "fewer clients; a candidate counts as failing when any of --tries tries fails "
                                   "with the same checker and anomaly. The best one's run dir gets shrunk.json.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--tries", type=int, default=3, metavar="N", help="tries per candidate (default 3)")
    p.add_argument("--budget", type=float, default=10.0, metavar="MINUTES", help="the whole search (default 10)")
    p.set_defaults(run=_run_shrink)


def _run_shrink(args: argparse.Namespace) -> int:
    from splitbrain.harness.shrink import shrink_run, write_shrunk
    from splitbrain.harness.store import open_run_dir

    if args.tries < 1 or not (math.isfinite(args.budget) and args.budget > 0):
        raise UsageError("shrink: --tries must be >= 1 and --budget a positive number of minutes")
    run_dir = open_run_dir(args.run_dir)
    try:
        found = shrink_run(str(run_dir.path), tries=args.tries, budget_s=args.budget * 60,
                           on_progress=lambda line: print(f"shrink: {line}", flush=True))
    except ValueError as e:
        raise UsageError(f"shrink: {e}") from None
    marked = write_shrunk(found, str(run_dir.path))
    if marked is None:
        print(f"shrink: no smaller candidate failed in {found.trials} tries; {run_dir.path} stays the smallest")
        return EXIT_INVALID
    print(f"shrink: {found.summary()}")
    print(f"shrink: {marked}; reproduce with: splitbrain repro {found.best_run_dir}")
    return EXIT_INVALID


def _add_cleanup(sub: Any) -> None:
    p = sub.add_parser("cleanup", help="remove what a killed run left (processes, namespaces, rules, containers)",
                       description="Remove what runs that died left on this machine, on Docker and on their SSH "
                                   "hosts, found by each run's own id only. A run's reaper does this by itself "
                                   "when the harness is killed; this is for when the reaper died too.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.set_defaults(run=_run_cleanup)


def _run_cleanup(args: argparse.Namespace) -> int:
    from splitbrain.harness.reaper import remove_marker
    from splitbrain.harness.store import open_run_dir
    from splitbrain.harness.test import nodes_of_record

    for path in args.run_dirs:
        run_dir = open_run_dir(path)
        try:
            record = run_dir.read_test()
        except ConfigError:
            record = {}
        removed = nodes_of_record(record).cleanup(run_dir.run_id)
        remove_marker(run_dir.path)
        print(f"{run_dir.path}: " + (", ".join(removed) if removed else "nothing left"))
    return 0


def _add_targets(sub: Any) -> None:
    p = sub.add_parser("targets", help="the targets, built-in and plugins, with their workloads and options")
    p.set_defaults(run=_run_listing, kind="target")
    p = sub.add_parser("workloads", help="the workloads, built-in and plugins")
    p.set_defaults(run=_run_listing, kind="workload")


def _run_listing(args: argparse.Namespace) -> int:
    from splitbrain.harness.plugins import describe, load_target, load_workload

    rows = describe(args.kind)
    if not rows:
        print(f"no {args.kind}s registered")
    for name, origin, text in rows:
        source = "built-in" if origin == "splitbrain" else f"plugin: {origin}"
        print(f"{name:<14} {text}  ({source})")
        if args.kind == "target" and not text.startswith("BROKEN"):
            spec = load_target(name)
            print(f"{'':<14}   workloads: {', '.join(spec.workloads)}; at least {spec.min_nodes} node(s)")
            for option, help_text in spec.options.items():
                print(f"{'':<14}   --target-opt {option}=...  {help_text}")
        if args.kind == "workload" and not text.startswith("BROKEN"):
            for option, help_text in getattr(load_workload(name), "options", {}).items():
                print(f"{'':<14}   --workload-opt {option}=...  {help_text}")
    return 0


# -- images ----------------------------------------------------------------------------------------------

def _add_images(sub: Any) -> None:
    p = sub.add_parser("images", help="the node image of Docker nodes: build it, list what is built",
                       description="Build the Docker node image (debootstrap + docker import; no registry), "
                                   "tagged with a hash of its recipe, or list the built ones.")
    actions = p.add_subparsers(dest="images_action", metavar="ACTION", parser_class=_Parser)
    build = actions.add_parser("build", help="build the node image unless its recipe's image exists")
    build.add_argument("--force", action="store_true", help="build even when the image exists")
    actions.add_parser("list", help="the node images on this machine")
    p.set_defaults(run=_run_images)


def _run_images(args: argparse.Namespace) -> int:
    from splitbrain.control.images import NODE_RECIPE, build_image, built_images

    if args.images_action == "build":
        started = time.monotonic()
        print(f"node image {NODE_RECIPE.tag}: packages {' '.join(NODE_RECIPE.packages)}", flush=True)
        tag, built = build_image(force=args.force, log=lambda line: print(line, flush=True))
        print(f"built {tag} in {time.monotonic() - started:.1f} s" if built else f"{tag} is up to date")
        return 0
    if args.images_action == "list":
        images = built_images()
        if not images:
            print(f"no node image built; `splitbrain images build` builds {NODE_RECIPE.tag}")
        for image in images:
            mark = "  (current recipe)" if image.current else ""
            print(f"{image.tag}  {image.size_bytes / 1e6:.0f} MB  {image.created}{mark}")
        return 0
    raise UsageError("images: expected an action: build | list (see --help)")


# -- sim -------------------------------------------------------------------------------------------------

def _add_sim(sub: Any) -> None:
    from splitbrain.targets.raft.sim.faults import FAULTS, SWARM_FAULTS
    from splitbrain.targets.raft.sim.simulate import SIM_BUGS

    p = sub.add_parser("sim", help="simulate the internal Raft store (deterministic: a seed replays exactly)",
                       description="Run N Raft cores in one thread with a simulated clock and a seeded network "
                                   "under faults, record and check the history. The same seed gives the "
                                   "byte-identical history.")
    p.add_argument("--seed", type=int, default=None, help="one run with the fixed fault mix")
    p.add_argument("--seeds", default=None, metavar="A..B",
                   help="a swarm: each seed draws its own fault mix, rates and client timeouts; stops at the first "
                        "failure and prints the command that reproduces it")
    p.add_argument("--jobs", type=int, default=1, metavar="K", help="--seeds: run K seeds at once (processes)")
    p.add_argument("--all", action="store_true", help="--seeds: run every seed, not only up to the first failure")
    p.add_argument("--shrink", action="store_true",
                   help="shrink the failing run to a minimal schedule, op script and cluster (deterministic)")
    p.add_argument("--max-runs", type=int, default=None, metavar="N", help="--shrink: at most N candidate runs")
    p.add_argument("--nodes", type=int, default=5)
    p.add_argument("--ops", type=int, default=1000)
    p.add_argument("--faults", default="all", metavar="KINDS",
                   help=f"comma list of {', '.join(SWARM_FAULTS)}; all (with --seed: {', '.join(FAULTS)}; with "
                        "--seeds: every kind), or none (default: all)")
    p.add_argument("--bug", default=None, metavar="NAME",
                   help=f"switch on a deliberate bug of the store: {', '.join(sorted(SIM_BUGS))} (default: none)")
    p.add_argument("--concurrency", type=int, default=5)
    p.add_argument("--lock-clients", type=int, default=2, help="how many of the clients use the lock workload")
    p.add_argument("--out", default=None, metavar="DIR", help="write history.jsonl and results.json here")
    p.set_defaults(run=_run_sim)


def _run_sim(args: argparse.Namespace) -> int:
    from splitbrain.targets.raft.sim.cli import run_sim_cli

    if (args.seed is None) == (args.seeds is None):
        raise UsageError("sim: give exactly one of --seed S (one run) or --seeds A..B (a swarm)")
    if args.seeds is not None:
        from splitbrain.targets.raft.sim.cli import run_swarm_cli

        code = run_swarm_cli(args.seeds, args.nodes, args.ops, args.faults, args.bug, args.out, jobs=args.jobs,
                             run_all=args.all, shrink=args.shrink, max_runs=args.max_runs)
        return EXIT_BAD_INPUT if code == 3 else code
    code = run_sim_cli(args.seed, args.nodes, args.ops, args.faults, args.bug, args.out,
                       lock_clients=args.lock_clients, concurrency=args.concurrency, shrink=args.shrink,
                       max_runs=args.max_runs)
    return EXIT_BAD_INPUT if code == 3 else code


# -- report / serve --------------------------------------------------------------------------------------

def _add_report(sub: Any) -> None:
    from splitbrain.histories.formats import FORMATS

    p = sub.add_parser("report", help="write the HTML report of a run directory or of a history file",
                       description="Write a self-contained HTML report: RUN_DIR/report.html from the run's files "
                                   "as they are (no new check; `analyze` checks again), or, for a history file "
                                   "(JSONL, EDN, Jepsen log), ./NAME.html with its timeline and plots. "
                                   "`check --report DIR` adds a checker's evidence.")
    p.add_argument("path", metavar="RUN_DIR|HISTORY")
    p.add_argument("--out", metavar="FILE", help="write the report here instead")
    p.add_argument("--format", default="auto", choices=("auto",) + FORMATS, help="of a history file")
    p.set_defaults(run=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from splitbrain.harness.report.command import report_command

    return report_command(args.path, args.out, args.format, sys.stdout)


def _add_serve(sub: Any) -> None:
    p = sub.add_parser("serve", help="browse a store of runs in a web browser (read-only)",
                       description="Serve a store of runs over HTTP, read-only: a page of every run (filter by "
                                   "verdict, target, workload; search by seed or name; sort by date), each run's "
                                   "report, files and a zip of it.")
    p.add_argument("--store", default="runs", metavar="DIR", help="the store (default runs/)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from splitbrain.harness.serve import serve

    if not Path(args.store).is_dir():
        raise UsageError(f"serve: --store {args.store}: no such directory")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"serve: --port must be between 0 and 65535, got {args.port}")
    try:
        serve(Path(args.store), args.host, args.port, out=sys.stdout)
    except KeyboardInterrupt:
        return 0  # Ctrl-C is how a server is stopped
    except OSError as e:
        raise UsageError(f"serve: cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    return 0


# -- entry point -----------------------------------------------------------------------------------------

def _add_test_all(sub: Any) -> None:
    from splitbrain.harness.plan.command import add_test_all

    add_test_all(sub)


COMMANDS: list[Callable[[Any], None]] = [_add_check, _add_run, _add_sim, _add_analyze, _add_repro, _add_shrink, _add_cleanup,
                                         _add_targets, _add_images, _add_report, _add_serve, _add_test_all]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; for ``check`` only its own sub-parser, so checking a file imports none of the run
    machinery (a whole `splitbrain check` of a small file stays near Python's start-up time)."""
    parser = _Parser(prog="splitbrain", description="Jepsen-style fault injection and history checking.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in [_add_check] if command == "check" else COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        command = next((a for a in argv if not a.startswith("-")), None)
        args = build_parser(command).parse_args(argv)
        if not getattr(args, "run", None):
            build_parser().print_help()
            return EXIT_BAD_INPUT
        return args.run(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (HistoryFormatError, ConfigError) as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (RemoteError, HostError) as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_RUN_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BaseException as e:  # a signal before a run had made anything (harness/stopping.py)
        from splitbrain.harness.stopping import Interrupted

        if not isinstance(e, Interrupted):
            raise
        print(f"interrupted by {e}: nothing was started", file=sys.stderr)
        return 128 + e.signum


if __name__ == "__main__":
    sys.exit(main())
