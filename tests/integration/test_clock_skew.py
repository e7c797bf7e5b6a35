"""Clock skew on real processes: a patched vDSO shifts the wall clock of Python, C (date), Go (etcd) and
Java programs, changeable at run time, with monotonic clocks untouched and the host clock never changed.

Needs root (ptrace and /proc/PID/mem of other processes; network namespaces). Every reading is
bracketed between two readings of the real clock in this (unpatched) process, so no timing is asserted.
Packages: etcd-server (Go), default-jre-headless (Java), libfaketime (the fallback).
"""

from __future__ import annotations

import email.utils
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from splitbrain.control import clockpatch
from splitbrain.control.clockpatch import ClockPatchError, SkewedProcess
from splitbrain.histories.op import Op
from splitbrain.nemesis.clock import BUMP, ClockNemesis

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="clock skew tests need root (ptrace, /proc/PID/mem)"),
]

HOUR_NS = 3600 * 10**9
SECOND_NS = 10**9

# Answers one line per request on stdin: "wall" -> time.time_ns(), "mono" -> time.monotonic_ns(),
# "thread" -> time.time_ns() read by a thread started just now, "gettimeofday" and "time" -> the C
# library's gettimeofday() and time() in ns (glibc routes both to the vDSO), "exec" -> execs `date`.
CLOCK_SERVER = r"""
import ctypes, os, sys, threading, time
libc = ctypes.CDLL(None)
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "wall":
        print(time.time_ns(), flush=True)
    elif cmd == "mono":
        print(time.monotonic_ns(), flush=True)
    elif cmd == "thread":
        seen = []
        t = threading.Thread(target=lambda: seen.append(time.time_ns()))
        t.start(); t.join()
        print(seen[0], flush=True)
    elif cmd == "gettimeofday":
        tv = (ctypes.c_int64 * 2)()
        libc.gettimeofday(tv, None)
        print(tv[0] * 10**9 + tv[1] * 1000, flush=True)
    elif cmd == "time":
        libc.time.restype = ctypes.c_int64
        print(libc.time(None) * 10**9, flush=True)
    elif cmd == "exec":
        os.execv("/bin/date", ["date", "+%s%N"])
"""

Spawn = Callable[..., SkewedProcess]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """spawn_skewed, with every process it started killed (whole session) at the end, pass or fail."""
    started: list[SkewedProcess] = []

    def start(argv: list[str], **options: object) -> SkewedProcess:
        options.setdefault("start_new_session", True)
        process = clockpatch.spawn_skewed(argv, **options)  # type: ignore[arg-type]
        started.append(process)
        return process

    yield start
    for process in started:
        kill_session(process)


def kill_session(process: SkewedProcess) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.popen.wait(timeout=10)
    for stream in (process.popen.stdin, process.popen.stdout, process.popen.stderr):
        if stream is not None:
            stream.close()


def clock_server(spawn: Spawn, offset_ns: int, **options: object) -> SkewedProcess:
    return spawn(
        [python_binary(), "-u", "-c", CLOCK_SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        offset_ns=offset_ns,
        **options,
    )


def python_binary() -> str:
    # The real interpreter, not a wrapper script (pyenv shims exec it later and would lose the patch).
    return os.path.realpath(sys.executable)


def ask(process: SkewedProcess, command: str) -> int:
    assert process.popen.stdin is not None and process.popen.stdout is not None
    process.popen.stdin.write(f"{command}\n".encode())
    process.popen.stdin.flush()
    return int(process.popen.stdout.readline())


# How much coarser than ns each command's answer is (gettimeofday: us; time: s).
RESOLUTION_NS = {"gettimeofday": 1000, "time": SECOND_NS}


def assert_wall_offset(process: SkewedProcess, offset_ns: int, command: str = "wall") -> None:
    resolution = RESOLUTION_NS.get(command, 1)
    before = time.time_ns()
    seen = ask(process, command)
    after = time.time_ns()
    assert (before + offset_ns) // resolution * resolution <= seen <= after + offset_ns, (
        f"{command}: the process is off by {(seen - before) / 1e9:.3f} s, expected {offset_ns / 1e9:.3f} s"
    )


@pytest.mark.timeout(30)
def test_probe_says_the_vdso_patch_works_here() -> None:
    assert clockpatch.probe() == "vdso"


@pytest.mark.timeout(30)
def test_python_sees_a_bump_a_run_time_change_and_a_reset(spawn: Spawn) -> None:
    host_before = time.time_ns()
    process = clock_server(spawn, HOUR_NS)
    assert_wall_offset(process, HOUR_NS)
    process.set_offset(-30 * SECOND_NS)
    assert_wall_offset(process, -30 * SECOND_NS)
    assert process.offset() == -30 * SECOND_NS
    process.set_offset(0)
    assert_wall_offset(process, 0)
    # The host clock was never touched: this process's clock moved on normally.
    assert abs(time.time_ns() - host_before) < 60 * SECOND_NS


@pytest.mark.timeout(30)
@pytest.mark.parametrize("offset_ns", [HOUR_NS, -90 * SECOND_NS - 1])
def test_c_gettimeofday_and_time_see_the_offset(spawn: Spawn, offset_ns: int) -> None:
    process = clock_server(spawn, offset_ns)
    assert_wall_offset(process, offset_ns, "gettimeofday")
    assert_wall_offset(process, offset_ns, "time")
    process.set_offset(-offset_ns)
    assert_wall_offset(process, -offset_ns, "gettimeofday")
    assert_wall_offset(process, -offset_ns, "time")


@pytest.mark.timeout(30)
def test_threads_started_later_see_the_offset(spawn: Spawn) -> None:
    process = clock_server(spawn, 2 * HOUR_NS)
    assert_wall_offset(process, 2 * HOUR_NS, "thread")
    process.set_offset(-HOUR_NS)
    assert_wall_offset(process, -HOUR_NS, "thread")


@pytest.mark.timeout(30)
def test_monotonic_time_is_not_skewed(spawn: Spawn) -> None:
    process = clock_server(spawn, -HOUR_NS)
    before = time.monotonic_ns()
    seen = ask(process, "mono")
    after = time.monotonic_ns()
    assert before <= seen <= after


@pytest.mark.timeout(30)
def test_date_a_c_program_sees_the_offset(spawn: Spawn) -> None:
    day = 24 * HOUR_NS
    before = time.time_ns()
    process = spawn(["date", "+%s%N"], stdout=subprocess.PIPE, offset_ns=day)
    out, _ = process.popen.communicate(timeout=10)
    after = time.time_ns()
    assert before + day <= int(out) <= after + day


@pytest.mark.timeout(30)
def test_a_process_that_execs_gets_a_fresh_vdso_and_refuses_further_offsets(spawn: Spawn) -> None:
    process = clock_server(spawn, HOUR_NS)
    assert_wall_offset(process, HOUR_NS)
    before = time.time_ns()
    exec_output = ask(process, "exec")  # now `date`, with the real clock: the documented limit
    after = time.time_ns()
    assert before <= exec_output <= after
    with pytest.raises(ClockPatchError):
        process.set_offset(0)


@pytest.mark.timeout(30)
def test_offsets_of_a_process_that_is_gone_are_a_clear_error(spawn: Spawn) -> None:
    process = spawn(["true"], offset_ns=HOUR_NS)
    process.popen.wait(timeout=10)
    with pytest.raises(ClockPatchError, match=f"process {process.pid}"):
        clockpatch.set_offset(process.pid, process.slot_address, 0)


@pytest.mark.timeout(30)
def test_a_program_that_cannot_start_leaves_nothing_behind() -> None:
    with pytest.raises(FileNotFoundError):
        clockpatch.spawn_skewed(["/nonexistent/program"], offset_ns=HOUR_NS)
    with pytest.raises(ClockPatchError, match="network namespace"):
        clockpatch.spawn_skewed(["true"], netns="splitbrain-no-such-netns")


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"sb-clocktest-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)


@pytest.mark.timeout(30)
def test_a_process_in_a_network_namespace_is_skewed_and_inside_it(spawn: Spawn, netns: str) -> None:
    process = clock_server(spawn, -HOUR_NS, netns=netns)
    assert_wall_offset(process, -HOUR_NS)
    assert os.stat(f"/proc/{process.pid}/ns/net").st_ino == os.stat(f"/var/run/netns/{netns}").st_ino


@pytest.mark.timeout(60)
def test_the_clock_nemesis_skews_real_processes_per_node_and_heals(spawn: Spawn) -> None:
    n1, n2 = clock_server(spawn, 0), clock_server(spawn, 0)
    nemesis = ClockNemesis({"n1": [n1], "n2": [n2]})
    done = nemesis.invoke(None, Op(0, "invoke", "nemesis", BUMP, {"n1": 90_000, "n2": -1500}))
    assert done.error is None
    assert_wall_offset(n1, 90 * SECOND_NS)
    assert_wall_offset(n2, -1500 * 10**6)
    nemesis.heal(None)
    assert_wall_offset(n1, 0)
    assert_wall_offset(n2, 0)
    assert {"vdso"} == nemesis.mechanisms()["n1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_date(url: str) -> int:
    """The server's clock as its HTTP Date header says (whole seconds, as ns)."""
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(email.utils.parsedate_to_datetime(response.headers["Date"]).timestamp()) * SECOND_NS


@pytest.mark.timeout(120)
def test_etcd_a_go_program_logs_and_serves_skewed_time_changeable_at_run_time(spawn: Spawn) -> None:
    etcd = shutil.which("etcd")
    if etcd is None:
        pytest.skip("etcd is not installed (apt-get install etcd-server)")
    client, peer = free_port(), free_port()
    with tempfile.TemporaryDirectory() as data:
        log_path = Path(data) / "etcd.log"
        with open(log_path, "wb") as log_file:
            before = time.time_ns()
            process = spawn(
                [etcd, "--data-dir", f"{data}/member", "--logger", "zap", "--name", "clocktest",
                 "--listen-client-urls", f"http://127.0.0.1:{client}",
                 "--advertise-client-urls", f"http://127.0.0.1:{client}",
                 "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                 "--initial-cluster", f"clocktest=http://127.0.0.1:{peer}"],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                offset_ns=HOUR_NS,
            )  # fmt: skip
        url = f"http://127.0.0.1:{client}/version"
        while True:  # until etcd serves (bounded by the test's timeout)
            try:
                served = http_date(url)
                break
            except OSError:
                assert process.popen.poll() is None, log_path.read_text()
                time.sleep(0.1)
        after = time.time_ns()
        first_log = json.loads(log_path.read_text().splitlines()[0])
        logged = int(datetime.fromisoformat(first_log["ts"].replace("Z", "+00:00")).timestamp() * 1e9)
        # zap logs milliseconds: allow the rounding.
        assert before + HOUR_NS - 10**6 <= logged <= after + HOUR_NS + 10**6
        assert (before + HOUR_NS) // SECOND_NS * SECOND_NS <= served <= after + HOUR_NS

        process.set_offset(-30 * SECOND_NS)
        before = time.time_ns()
        served = http_date(url)
        after = time.time_ns()
        assert (before - 30 * SECOND_NS) // SECOND_NS * SECOND_NS <= served <= after - 30 * SECOND_NS


JAVA_CLOCK = """
public class Clock {
    public static void main(String[] args) throws Exception {
        java.io.BufferedReader in = new java.io.BufferedReader(new java.io.InputStreamReader(System.in));
        for (String line; (line = in.readLine()) != null; ) {
            java.time.Instant now = java.time.Instant.now();
            System.out.println(line.equals("mono") ? System.nanoTime()
                : now.getEpochSecond() * 1_000_000_000L + now.getNano());
            System.out.flush();
        }
    }
}
"""


@pytest.mark.timeout(120)
def test_java_sees_the_offset_and_its_change(spawn: Spawn, tmp_path: Path) -> None:
    java = shutil.which("java")
    if java is None:
        pytest.skip("java is not installed (apt-get install default-jre-headless)")
    source = tmp_path / "Clock.java"
    source.write_text(JAVA_CLOCK)
    process = spawn(
        [os.path.realpath(java), "-Xmx64m", "-XX:TieredStopAtLevel=1", str(source)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        offset_ns=-2 * HOUR_NS,
    )
    assert_wall_offset(process, -2 * HOUR_NS)
    process.set_offset(45 * SECOND_NS)
    assert_wall_offset(process, 45 * SECOND_NS)


@pytest.mark.timeout(60)
def test_the_libfaketime_fallback_skews_python(tmp_path: Path) -> None:
    if clockpatch.faketime_library() is None:
        pytest.skip("libfaketime is not installed (apt-get install libfaketime)")
    process = clockpatch.spawn_faketime(
        [python_binary(), "-u", "-c", CLOCK_SERVER],
        str(tmp_path / "offset"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
        offset_ns=HOUR_NS,
    )
    try:
        assert process.mechanism == "faketime"
        assert_wall_offset(process, HOUR_NS)
        process.set_offset(-HOUR_NS)
        # libfaketime re-reads its file about once a second: poll (bounded by the test's timeout).
        while ask(process, "wall") > time.time_ns():
            time.sleep(0.1)
        assert_wall_offset(process, -HOUR_NS)
    finally:
        kill_session(process)
