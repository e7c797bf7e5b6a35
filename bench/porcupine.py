"""splitbrain side by side with Porcupine (Go) on the same histories: verdicts, checking and parsing time.

    python bench/porcupine.py --porcupine DIR [--corpus ../shared/corpus] [--runs 5] [--sizes 1000 10000 100000]
                              [--only etcd,kv,knossos,generated,process,recorder,elle] [--elle-txns 1000000]

DIR is a snapshot of github.com/anishathalye/porcupine (its source and its test_data). The script builds a
small driver of our own (bench/porcupine_driver.go.txt, which only calls Porcupine's public API) against
that snapshot with Debian's ``go`` in a build folder outside the repository (--build-dir, default
~/.cache/splitbrain/porcupine-bench), offline. Without ``go`` or the snapshot it says so and skips the
Porcupine columns.

Histories: Porcupine's own test data (test_data/jepsen: Jepsen etcd logs, cas register; test_data/kv: kv
logs, per key), which Porcupine parses itself as its tests do; the corpus's Knossos cas-register files
and generated cas-register histories (bench/generated.py), which Porcupine reads in a neutral op format
written from splitbrain's own reading of each file (so both check exactly the same operations).

Every figure is the median of --runs rounds, checking alone (the file already parsed) unless the row
says parsing; the ratio is splitbrain / Porcupine (below 1: splitbrain faster). The two tools alternate
round by round (splitbrain checks every file of a folder once, then the driver does), so load from
elsewhere on the machine hits both alike. "process" is a whole ``splitbrain check`` of a small file, from
a normal (non-editable) install made for the bench in a temporary venv, against the driver's whole
process on it.
"recorder" and "elle" have no Porcupine counterpart: their column is the goal of issue 17.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parent))

from generated import cas_register_history  # noqa: E402
from splitbrain.checkers.budget import default_max_memory  # noqa: E402
from splitbrain.checkers.linearizable import check_linearizable, prepared_operations  # noqa: E402
from splitbrain.checkers.models import cas_register, kv  # noqa: E402
from splitbrain.histories.formats import load_history  # noqa: E402
from splitbrain.histories.history import History  # noqa: E402

HERE = Path(__file__).resolve().parent
DRIVER_SOURCE = HERE / "porcupine_driver.go.txt"
SECTIONS = ("etcd", "kv", "knossos", "generated", "process", "recorder", "elle")
TIMEOUT_MS = 600_000


# -- building and running the Porcupine driver ----------------------------------------------------------

def build_driver(snapshot: Path, build_root: Path) -> tuple[Path | None, str]:
    """(the driver binary, "") or (None, why it cannot be built)."""
    go = shutil.which("go")
    if go is None:
        return None, "no `go` on PATH (Debian: apt-get install golang)"
    if not (snapshot / "checker.go").is_file() or not (snapshot / "go.mod").is_file():
        return None, f"{snapshot} is not a Porcupine snapshot (no checker.go / go.mod)"
    key = hashlib.sha256(str(snapshot.resolve()).encode() + DRIVER_SOURCE.read_bytes()).hexdigest()[:16]
    build = build_root / key
    binary = build / "driver"
    if binary.exists():
        return binary, ""
    build.mkdir(parents=True, exist_ok=True)
    (build / "main.go").write_text(DRIVER_SOURCE.read_text())
    (build / "go.mod").write_text("module splitbrainbench\n\ngo 1.16\n\n"
                                  "require github.com/anishathalye/porcupine v0.0.0\n\n"
                                  f"replace github.com/anishathalye/porcupine => {snapshot.resolve()}\n")
    env = dict(os.environ, GOFLAGS="-mod=mod", GOPROXY="off", GOWORK="off", GOCACHE=str(build_root / "gocache"),
               GOPATH=str(build_root / "gopath"))
    done = subprocess.run([go, "build", "-o", str(binary), "."], cwd=build, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return None, "go build failed: " + done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "go build failed"
    return binary, ""


def run_driver(binary: Path, jobs: list[tuple[str, Path]], runs: int) -> dict[str, tuple[str, float, float]]:
    """path -> (verdict ok|illegal|unknown, parse ms, check ms), medians over ``runs``.

    The driver gets the memory budget splitbrain's search gets (a quarter of the memory available, as
    an address-space limit): a job that needs more ends as "out of memory" instead of as the machine's."""
    limit = default_max_memory()

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    text = "".join(f"{kind} {runs} {TIMEOUT_MS} {path}\n" for kind, path in jobs)
    done = subprocess.run([str(binary)], input=text, capture_output=True, text=True, preexec_fn=limit_memory)
    out = {}
    for line in done.stdout.splitlines():
        path, verdict, parse_ms, check_ms = line.split("\t")
        out[path] = (verdict, float(parse_ms), float(check_ms))
    for _, path in jobs:
        if str(path) not in out:
            why = "out of memory" if "out of memory" in done.stderr else f"failed (exit {done.returncode})"
            out[str(path)] = (f"{why}, {limit >> 30} GiB limit", float("nan"), float("nan"))
    return out


def write_ops(history: History, model, path: Path) -> None:
    """The neutral op format of porcupine_driver.go.txt: the ops splitbrain checks, nothing else."""
    def value(v) -> str:
        return "nil" if v is None else str(int(v))

    lines = [f"init {value(model.init())}"]
    for op in prepared_operations(history, model):
        ok = op.type == "ok"
        ret = op.ret if ok else -1
        f = op.f
        if f == "read":
            lines.append(f"{op.process} {op.call} {ret} r 0 0 {value(op.completion.value)}")
        elif f == "write":
            lines.append(f"{op.process} {op.call} {ret} w {value(op.invoke.value)} 0 {'ok' if ok else '?'}")
        else:
            old, new = op.invoke.value
            lines.append(f"{op.process} {op.call} {ret} c {value(old)} {value(new)} {'ok' if ok else '?'}")
    path.write_text("\n".join(lines) + "\n")


# -- measuring splitbrain --------------------------------------------------------------------------------

def median_ms(fn, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def splitbrain_file(path: Path, make_model, runs: int, history: History | None = None) -> tuple[str, float, float]:
    parse_ms = 0.0
    if history is None:
        parse_ms, history = median_ms(lambda: load_history(str(path)), runs)
    check_ms, result = median_ms(lambda: check_linearizable(history, make_model(), time_limit=TIMEOUT_MS / 1000), runs)
    verdict = {True: "ok", False: "illegal", "unknown": "unknown"}[result.valid]
    return verdict, parse_ms, check_ms


def alternated(ours_round, theirs_round, runs: int) -> tuple[dict, dict | None]:
    """Medians per file of ``runs`` rounds, splitbrain's and Porcupine's rounds taking turns.

    ``ours_round()`` / ``theirs_round()`` measure every file once: {file: (verdict, parse ms, check ms)};
    ``theirs_round`` None: no Porcupine."""
    ours_runs: list[dict] = []
    theirs_runs: list[dict] = []
    for _ in range(runs):
        ours_runs.append(ours_round())
        if theirs_round is not None:
            theirs_runs.append(theirs_round())
    return _medians(ours_runs), _medians(theirs_runs) if theirs_runs else None


def _medians(rounds: list[dict]) -> dict:
    return {name: (rounds[0][name][0], statistics.median(r[name][1] for r in rounds),
                   statistics.median(r[name][2] for r in rounds)) for name in rounds[0]}


# -- the table -------------------------------------------------------------------------------------------

def ratio(a: float, b: float | None) -> str:
    return f"{a / b:.2f}" if b and not math.isnan(b) else "-"


def ms_text(t: tuple[str, float, float] | None) -> str:
    return "-" if t is None else "-" if math.isnan(t[2]) else f"{t[2]:.1f} ms"


def row(work: str, ours: str, theirs: str, r: str, note: str = "") -> None:
    print(f"| {work} | {ours} | {theirs} | {r} | {note} |", flush=True)


def folder_rows(label: str, names: list[str], ours: dict, theirs: dict | None, parses_natively: bool) -> None:
    """Sum and median file of checking, the per-file ratio's median, verdict agreement, parsing."""
    ms = [ours[n][2] for n in names]
    line = f"{len(names)} files"
    if theirs is None:
        row(f"{label}, sum", f"{sum(ms):.1f} ms", "-", "-", line)
        row(f"{label}, median file", f"{statistics.median(ms):.3f} ms", "-", "-", "")
        return
    pms = [theirs[n][2] for n in names]
    agree = sum(ours[n][0] == theirs[n][0] for n in names)
    per_file = [o / p for o, p in zip(ms, pms, strict=True) if p > 0]
    slower = sum(r > 1 for r in per_file)
    row(f"{label}, sum", f"{sum(ms):.1f} ms", f"{sum(pms):.1f} ms", ratio(sum(ms), sum(pms)),
        f"{line}, same verdict on {agree}; slower on {slower}")
    row(f"{label}, median file", f"{statistics.median(ms):.3f} ms", f"{statistics.median(pms):.3f} ms",
        ratio(statistics.median(ms), statistics.median(pms)), f"median of per-file ratios {statistics.median(per_file):.2f}")
    worst = max(names, key=lambda n: ours[n][2] / max(theirs[n][2], 1e-9))
    row(f"{label}, worst file", f"{ours[worst][2]:.3f} ms", f"{theirs[worst][2]:.3f} ms",
        ratio(ours[worst][2], theirs[worst][2]), Path(worst).name)
    parse = sum(ours[n][1] for n in names)
    if parse > 0 and parses_natively:
        row(f"{label}, parsing", f"{parse:.1f} ms", f"{sum(theirs[n][1] for n in names):.1f} ms",
            ratio(parse, sum(theirs[n][1] for n in names)), "")
    disagree = [Path(n).name + f" ({ours[n][0]} vs {theirs[n][0]})" for n in names if ours[n][0] != theirs[n][0]]
    if disagree:
        row(f"{label}, verdicts differ", "", "", "", ", ".join(disagree))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--porcupine", type=Path, default=os.environ.get("PORCUPINE_SRC"),
                    help="a snapshot of github.com/anishathalye/porcupine (or $PORCUPINE_SRC)")
    ap.add_argument("--corpus", type=Path, default=HERE.parents[1] / "shared" / "corpus")
    ap.add_argument("--build-dir", type=Path, default=Path.home() / ".cache" / "splitbrain" / "porcupine-bench")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated: " + ",".join(SECTIONS))
    ap.add_argument("--elle-txns", type=int, default=1_000_000)
    args = ap.parse_args()
    only = set(args.only.split(","))
    binary, why = (None, "no snapshot given (--porcupine DIR or $PORCUPINE_SRC)") if args.porcupine is None \
        else build_driver(args.porcupine, args.build_dir)
    if binary is None:
        print(f"Porcupine columns skipped: {why}")
    print(f"median of {args.runs} runs; ratio = splitbrain / Porcupine; load average at the start "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (the whole-process and recorder rows feel it most)")
    print("| work | splitbrain | Porcupine | ratio | notes |")
    print("|---|---|---|---|---|")
    cas, kv_model = (lambda: cas_register(None)), (lambda: kv(""))
    data = args.porcupine / "test_data" if args.porcupine is not None else None
    with tempfile.TemporaryDirectory(prefix="splitbrain-bench-") as tmp:
        groups: list[tuple[str, list[tuple[Path, object, str]]]] = []
        if "etcd" in only and data is not None and (data / "jepsen").is_dir():
            groups.append(("porcupine etcd (test_data/jepsen)",
                           [(p, cas, "etcd") for p in sorted((data / "jepsen").glob("*.log"))]))
        if "kv" in only and data is not None and (data / "kv").is_dir():
            groups.append(("porcupine kv (test_data/kv)", [(p, kv_model, "kv") for p in sorted((data / "kv").glob("*.txt"))]))
        if "knossos" in only and (args.corpus / "knossos-cas-register").is_dir():
            files = sorted((args.corpus / "knossos-cas-register").glob("*.edn"))
            groups.append(("knossos cas-register (corpus)", [(p, lambda: cas_register(0), "ops") for p in files]))
        for label, files in groups:
            jobs = []
            for path, make_model, kind in files:
                if kind == "ops":
                    neutral = Path(tmp) / (path.stem + ".ops")
                    write_ops(load_history(str(path)), make_model(), neutral)
                    jobs.append(("ops", neutral))
                else:
                    jobs.append((kind, path))

            def ours_round(files=files):
                return {str(path): splitbrain_file(path, make_model, 1) for path, make_model, _ in files}

            def theirs_round(files=files, jobs=jobs):
                measured = run_driver(binary, jobs, 1)
                return {str(path): measured[str(job)] for (path, _, _), (_, job) in zip(files, jobs, strict=True)}

            ours, theirs = alternated(ours_round, theirs_round if binary is not None else None, args.runs)
            folder_rows(label, [str(p) for p, _, _ in files], ours, theirs, parses_natively=files[0][2] != "ops")
            if files[0][2] == "ops":
                row(f"{label}, parsing", f"{sum(o[1] for o in ours.values()):.1f} ms", "-", "-",
                    "Porcupine reads these in a neutral format written by this script: no parser to compare")
            if label.startswith("porcupine kv"):
                for path, _, _ in files:
                    if path.stem.startswith("c50") or path.stem.startswith("c10"):
                        o, t = ours[str(path)], theirs[str(path)] if theirs else None
                        row(f"kv {path.stem}", f"{o[2]:.1f} ms", f"{t[2]:.1f} ms" if t else "-",
                            ratio(o[2], t[2] if t else None), f"verdicts {o[0]} / {t[0] if t else '-'}")
        if "generated" in only:
            for n in args.sizes:
                for info, invalid, what in ((0.0, False, "no info, valid"), (0.05, False, "5% info, valid"),
                                            (0.0, True, "no info, invalid")):
                    history = cas_register_history(n, info=info, invalid=invalid)
                    neutral = Path(tmp) / f"cas-{n}-{info}-{invalid}.ops"
                    write_ops(history, cas(), neutral)
                    ours, theirs = alternated(
                        lambda h=history: {"h": splitbrain_file(Path("generated"), cas, 1, history=h)},
                        None if binary is None else lambda p=neutral: {"h": run_driver(binary, [("ops", p)], 1)[str(p)]},
                        args.runs)
                    o, t = ours["h"], theirs["h"] if theirs else None
                    row(f"cas-register {n:,} ops, {what}", f"{o[2]:.1f} ms", ms_text(t),
                        ratio(o[2], t[2] if t else None), f"verdicts {o[0]} / {t[0] if t else '-'}")
        if "process" in only:
            process_row(args, binary, Path(tmp))
    if "recorder" in only:
        recorder_row(args.runs)
    if "elle" in only:
        elle_rows(args.elle_txns)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


def process_row(args: argparse.Namespace, binary: Path | None, tmp: Path) -> None:
    """A whole `splitbrain check` of one small etcd log against the driver's whole process on it."""
    small = None
    if args.porcupine is not None and (args.porcupine / "test_data" / "jepsen" / "etcd_020.log").exists():
        small = args.porcupine / "test_data" / "jepsen" / "etcd_020.log"
    elif (args.corpus / "porcupine-etcd" / "etcd_020.log").exists():
        small = args.corpus / "porcupine-etcd" / "etcd_020.log"
    if small is None:
        return
    check = ["check", str(small), "--model", "cas-register"]
    installed, why = normal_install(tmp)
    exe = Path(sys.executable).with_name("splitbrain")
    editable = [str(exe)] if exe.exists() else [sys.executable, "-m", "splitbrain.harness.cli"]
    commands = {"editable": editable + check}
    if installed is not None:
        commands["installed"] = [str(installed)] + check
    if binary is not None:
        commands["porcupine"] = [str(binary)]
    stdin = {"porcupine": f"etcd 1 {TIMEOUT_MS} {small}\n"}
    for name, command in commands.items():  # once first, so the modules' bytecode is cached as on a user's machine
        _wall_ms(command, stdin.get(name))
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(max(args.runs, 11)):  # the commands take turns
        for name, command in commands.items():
            times[name].append(_wall_ms(command, stdin.get(name)))
    med = {name: statistics.median(t) for name, t in times.items()}
    theirs = med.get("porcupine")
    ours = med.get("installed", med["editable"])
    note = "normal install (a wheel in a temporary venv)" if installed is not None else f"editable install ({why})"
    row(f"`splitbrain check` of {small.name}, whole process", f"{ours:.1f} ms",
        f"{theirs:.1f} ms" if theirs else "-", ratio(ours, theirs),
        f"goal: at most 60 ms; {note}; the editable install of development: {med['editable']:.1f} ms")


def normal_install(tmp: Path) -> tuple[Path | None, str]:
    """`splitbrain` of a normal install, as a user gets it: this checkout built as a wheel and installed
    into a temporary venv (no dependencies: `check` needs none). (None, why) when that fails."""
    wheels, venv = tmp / "wheel", tmp / "venv"
    steps = [[sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(HERE.parent)],
             [sys.executable, "-m", "venv", str(venv)]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            return None, f"{' '.join(step[:4])} failed"
    wheel = next(wheels.glob("splitbrain-*.whl"), None)
    if wheel is None:
        return None, "no wheel built"
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", "--no-index", str(wheel)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return None, "pip install of the wheel failed"
    return venv / "bin" / "splitbrain", ""


def _wall_ms(command: list[str], stdin: str | None = None) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # a user's Python caches
    start = time.perf_counter()
    subprocess.run(command, input=stdin, capture_output=True, text=True, env=env)
    return (time.perf_counter() - start) * 1000


def recorder_row(runs: int) -> None:
    done = subprocess.run([sys.executable, str(HERE / "harness.py"), "--runs", str(runs), "--json"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        row("recorder", "failed", "", "", done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "")
        return
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    row("recorder, no-op client, 10 workers, history.jsonl", f"{figures['disk']:,.0f} ops/s", "(goal 50,000)",
        f"{figures['disk'] / 50_000:.2f} of goal", f"memory only: {figures['memory']:,.0f} ops/s")


def elle_rows(txns: int) -> None:
    done = subprocess.run([sys.executable, str(HERE / "elle.py"), "--sizes", str(txns), "--runs", "1", "--json"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        row("elle", "failed", "", "", done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "")
        return
    for line in done.stdout.strip().splitlines():
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        row(f"Elle list-append {r['txns']:,} txns, {r['kind']}", f"{r['seconds']:.1f} s, {r['peak_mib']:,.0f} MiB",
            "(goal 15 s, 2 GiB)", f"{r['seconds'] / 15:.2f} of goal", f"valid={r['valid']}, {r['types']} anomaly types")


if __name__ == "__main__":
    sys.exit(main())
