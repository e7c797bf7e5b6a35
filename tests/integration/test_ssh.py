"""SSH nodes for real: an sshd runs inside each local node (a network namespace of this machine), and the
harness reaches the nodes only through SSH (SSHRemote): commands, files, processes, and a whole
`splitbrain run --remote ssh` of the Raft store under partitions, crashes and pauses.

Every sshd listens on its node's address only (port 2222), with its own host key and authorized_keys in
a temp dir, and runs in a private mount namespace with a tmpfs on /run where it makes the /run/sshd it
needs, so nothing is created on the host. Each host also has a file system of its own where runs keep
their files (--ssh-dir: a private tmpfs over the same path on every host), as real hosts do: a file the
harness wrote on this machine instead of on the host is not there for the host's programs. SSH goes only to addresses inside namespaces this test made.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from splitbrain.control.errors import ConfigError, RemoteError
from splitbrain.control.local import LocalCluster, leftover_runs
from splitbrain.control.ssh import SSHRemote, parse_ssh_hosts

from tests.integration.helpers import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="local nodes need root (network namespaces)"),
    pytest.mark.skipif(shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists(),
                       reason="needs openssh-server (.ci/setup installs it)"),
]

SSH_PORT = 2222
SSHD = "/usr/sbin/sshd"
SSHD_READY_S = 10.0
# sshd needs /run/sshd; it gets it on a tmpfs over /run in its own mount namespace, not on the host. $1
# gets a tmpfs of its own too: the host's private directory for runs (--ssh-dir).
SSHD_IN_PRIVATE_RUN = ('mount -t tmpfs -o mode=755 tmpfs /run && mkdir -m 755 /run/sshd && '
                       'mount -t tmpfs -o mode=755 tmpfs "$1" && shift && exec "$@"')


@dataclass
class SSHNodes:
    cluster: LocalCluster
    key_file: Path
    known_hosts: Path  # every node's host key, as an ssh client's known_hosts would list it
    sshd: dict[str, subprocess.Popen[bytes]]
    host_dir: Path  # --ssh-dir: each host has its own private file system at this path

    @property
    def hosts_option(self) -> str:
        return ",".join(f"{n}={a}:{SSH_PORT}" for n, a in self.cluster.addresses.items())

    def remote(self, node: str, **options: object) -> SSHRemote:
        options.setdefault("key_file", str(self.key_file))
        options.setdefault("known_hosts", str(self.known_hosts))
        return SSHRemote(node, self.cluster.addresses[node], SSH_PORT, **options)  # type: ignore[arg-type]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def _sshd_config(folder: Path, address: str, authorized_keys: Path) -> Path:
    _keygen(folder / "host_key")
    config = folder / "sshd_config"
    config.write_text(
        f"ListenAddress {address}:{SSH_PORT}\n"
        f"HostKey {folder / 'host_key'}\n"
        f"AuthorizedKeysFile {authorized_keys}\n"
        "PidFile none\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "StrictModes no\n"
        "PrintMotd no\n"
        "MaxStartups 100\n"
        "MaxSessions 100\n"
        "Subsystem sftp internal-sftp\n"
    )
    return config


def _wait_listening(address: str, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    import socket

    deadline = time.monotonic() + SSHD_READY_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd on {address} exited: {log.read_text()[-500:]}")
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd on {address}:{port} did not listen in {SSHD_READY_S} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(5)


@contextmanager
def sshd_nodes(tmp_path: Path, n_nodes: int) -> Iterator[SSHNodes]:
    """``n_nodes`` local nodes, each running an sshd on its own address; all of it removed afterwards."""
    run_id = f"ssh{os.getpid() % 100000}{int(time.time()) % 1000}"
    cluster = LocalCluster(run_id, n_nodes, log_dir=tmp_path / "local-nodes")
    sshd: dict[str, subprocess.Popen[bytes]] = {}
    host_dir = tmp_path / "hosts-own-dir"
    host_dir.mkdir()
    try:
        cluster.up()
        key_file = tmp_path / "id_ed25519"
        _keygen(key_file)
        authorized = tmp_path / "authorized_keys"
        shutil.copy(f"{key_file}.pub", authorized)
        known_hosts_lines = []
        for node, address in cluster.addresses.items():
            folder = tmp_path / f"sshd-{node}"
            folder.mkdir()
            config = _sshd_config(folder, address, authorized)
            log = folder / "sshd.log"
            with open(log, "ab") as out:
                sshd[node] = subprocess.Popen(
                    ["ip", "netns", "exec", cluster.netns[node], "unshare", "--mount", "--propagation", "private",
                     "sh", "-c", SSHD_IN_PRIVATE_RUN, "sh", str(host_dir), SSHD, "-D", "-e", "-f", str(config)],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, process_group=0,
                )
            _wait_listening(address, SSH_PORT, sshd[node], log)
            host_key = (folder / "host_key.pub").read_text().split()
            known_hosts_lines.append(f"[{address}]:{SSH_PORT} {host_key[0]} {host_key[1]}\n")
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text("".join(known_hosts_lines))
        yield SSHNodes(cluster, key_file, known_hosts, sshd, host_dir)
    finally:
        for process in sshd.values():
            _stop(process)
        cluster.down()


@pytest.fixture
def ssh_nodes(tmp_path: Path) -> Iterator[SSHNodes]:
    """Three local nodes, each running an sshd on its own address."""
    with sshd_nodes(tmp_path, 3) as nodes:
        yield nodes


def _node_pids(cluster: LocalCluster, node: str) -> set[int]:
    listing = subprocess.run(["ip", "netns", "pids", cluster.netns[node]], capture_output=True, text=True).stdout
    return {int(p) for p in listing.split()}


def _processes_besides_sshd(nodes: SSHNodes) -> dict[str, list[str]]:
    """What runs in the nodes other than the test's sshd listeners (their per-connection children too)."""
    left: dict[str, list[str]] = {}
    for node in nodes.cluster.nodes:
        for pid in _node_pids(nodes.cluster, node):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except OSError:
                continue  # gone meanwhile
            if cmdline and "sshd" not in cmdline and not cmdline.startswith(("unshare", "ip netns")):
                left.setdefault(node, []).append(f"{pid} {cmdline}")
    return left


# -- SSHRemote --------------------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_exec_quotes_every_argument_and_reports_exit_codes(ssh_nodes: SSHNodes) -> None:
    remote = ssh_nodes.remote("node1")
    try:
        tricky = "a b; echo injected $(id) `id` 'q' \"d\" * \\"
        result = remote.exec(["printf", "%s\\n", tricky, "--", ""])
        assert result.ok and result.stdout == f"{tricky}\n--\n\n"
        failed = remote.exec(["sh", "-c", "echo out; echo err >&2; exit 7"])
        assert (failed.rc, failed.stdout, failed.stderr) == (7, "out\n", "err\n")
        assert remote.exec(["cat"], stdin="line 1\nline 2\n").stdout == "line 1\nline 2\n"
        # It runs inside the node: the node's address is on its eth0.
        assert ssh_nodes.cluster.addresses["node1"] in remote.exec(["ip", "-4", "addr", "show", "eth0"]).stdout
        with pytest.raises(RemoteError, match="timed out"):
            remote.exec(["sleep", "5"], timeout=0.5)
        assert remote.exec(["true"]).ok  # the connection survives a timed-out command
    finally:
        remote.close()


@pytest.mark.timeout(60)
def test_reconnects_once_when_the_connection_dropped(ssh_nodes: SSHNodes) -> None:
    remote = ssh_nodes.remote("node2")
    try:
        assert remote.exec(["true"]).ok
        assert remote._client is not None
        remote._client.get_transport().close()  # type: ignore[union-attr] - the connection drops
        assert remote.exec(["echo", "back"]).stdout == "back\n"
    finally:
        remote.close()


@pytest.mark.timeout(60)
def test_exec_from_many_threads_shares_one_connection(ssh_nodes: SSHNodes) -> None:
    from concurrent.futures import ThreadPoolExecutor

    remote = ssh_nodes.remote("node1")
    try:
        with ThreadPoolExecutor(8) as pool:
            outputs = list(pool.map(lambda i: remote.exec(["echo", str(i)]).stdout, range(24)))
        assert outputs == [f"{i}\n" for i in range(24)]
    finally:
        remote.close()


@pytest.mark.timeout(60)
def test_upload_and_download_files_and_directories(ssh_nodes: SSHNodes, tmp_path: Path) -> None:
    remote = ssh_nodes.remote("node3")
    target = tmp_path / "on-host"  # the "host" shares this machine's files
    try:
        source = tmp_path / "src"
        (source / "sub").mkdir(parents=True)
        (source / "a.txt").write_text("alpha\n")
        (source / "sub" / "b.bin").write_bytes(bytes(range(256)) * 100)
        remote.upload(source / "a.txt", str(target / "deep" / "a.txt"))
        assert remote.exec(["cat", str(target / "deep" / "a.txt")]).stdout == "alpha\n"
        remote.upload(source, str(target / "tree"))
        assert (target / "tree" / "sub" / "b.bin").read_bytes() == bytes(range(256)) * 100
        back = tmp_path / "back"
        remote.download(str(target / "tree"), back)
        assert (back / "a.txt").read_text() == "alpha\n"
        assert (back / "sub" / "b.bin").read_bytes() == bytes(range(256)) * 100
        with pytest.raises(RemoteError, match="no such file"):
            remote.download(str(target / "missing"), tmp_path / "x")
    finally:
        remote.close()


@pytest.mark.timeout(60)
def test_spawn_kill_pause_resume_and_exit_codes(ssh_nodes: SSHNodes, tmp_path: Path) -> None:
    remote = ssh_nodes.remote("node1", work_dir=str(tmp_path / "work"))
    try:
        # A process that starts a child: kill and pause must reach the whole group.
        counter = tmp_path / "count"
        script = f'sleep 300 & while :; do echo tick >> {counter}; sleep 0.05; done'
        process = remote.spawn(["sh", "-c", script], env={"GREETING": "hello world"}, log="ticker.log")
        assert process.alive()
        assert wait_for(lambda: counter.exists() and counter.stat().st_size > 0, timeout=10)
        group = _group_members(process.pgid)
        assert len(group) >= 2  # the shell, its sleep child (and the tick loop's sleeps)

        process.pause()
        # Stopped (T); a shell caught in vfork waits (D) for its stopped child to exec, and cannot run either.
        assert wait_for(lambda: all(_state(p) in ("T", "D", None) for p in _group_members(process.pgid)), timeout=10), \
            {p: _state(p) for p in _group_members(process.pgid)}
        size = counter.stat().st_size
        time.sleep(0.3)
        assert counter.stat().st_size == size  # stopped: no ticks
        process.resume()
        assert wait_for(lambda: counter.stat().st_size > size, timeout=10)

        assert process.wait(0.2) is None  # still running
        process.kill(signal.SIGKILL)
        assert process.wait(10) == -signal.SIGKILL
        assert not process.alive() and not _group_members(process.pgid)

        env_echo = remote.spawn(["sh", "-c", 'echo "$GREETING"; exit 3'], env={"GREETING": "hello world"},
                                log="echo.log")
        assert env_echo.wait(10) == 3
        assert (tmp_path / "work" / "echo.log").read_text() == "hello world\n"

        term = remote.spawn([sys.executable, "-c", "import time; time.sleep(300)"])
        term.kill(signal.SIGTERM)
        assert term.wait(10) == -signal.SIGTERM

        # What the run never waited for is killed at clean-up, whole groups at once.
        left = [remote.spawn(["sh", "-c", "sleep 300 & sleep 300"]) for _ in range(2)]
        assert all(_group_members(p.pgid) for p in left)
        remote.kill_spawned()
        assert wait_for(lambda: not any(_group_members(p.pgid) for p in left), timeout=10)
    finally:
        remote.kill_spawned()
        remote.close()


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


@pytest.mark.timeout(60)
def test_unknown_host_keys_are_refused_unless_accepted(ssh_nodes: SSHNodes, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    address = ssh_nodes.cluster.addresses["node1"]
    refused = ssh_nodes.remote("node1", known_hosts=str(empty))
    with pytest.raises(ConfigError, match=f"node1: the host key of {address}:{SSH_PORT} is not known"):
        refused.exec(["true"])
    accepted = ssh_nodes.remote("node1", known_hosts=str(empty), accept_unknown_hosts=True)
    try:
        assert accepted.exec(["true"]).ok
    finally:
        accepted.close()
    # A key that differs from the known one is refused even when new keys are accepted.
    wrong = tmp_path / "wrong_known_hosts"
    other_key = (tmp_path / "sshd-node2" / "host_key.pub").read_text().split()
    wrong.write_text(f"[{address}]:{SSH_PORT} {other_key[0]} {other_key[1]}\n")
    changed = ssh_nodes.remote("node1", known_hosts=str(wrong), accept_unknown_hosts=True)
    with pytest.raises(ConfigError, match="differs from the known one"):
        changed.exec(["true"])


@pytest.mark.timeout(60)
def test_a_wrong_key_is_a_one_line_config_error(ssh_nodes: SSHNodes, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    _keygen(other)
    with pytest.raises(ConfigError, match="SSH login as root@.* failed") as e:
        ssh_nodes.remote("node1", key_file=str(other)).exec(["true"])
    assert "\n" not in str(e.value)


def test_ssh_hosts_option_is_parsed_or_refused_in_one_line() -> None:
    hosts = parse_ssh_hosts("node1=10.0.0.1:2222, node2=db2.example,node3=[fd00::3]:22")
    assert [(h.node, h.host, h.port) for h in hosts] == [
        ("node1", "10.0.0.1", 2222), ("node2", "db2.example", 22), ("node3", "fd00::3", 22)]
    assert parse_ssh_hosts([str(h) for h in hosts]) == hosts  # what test.json stores reads back the same
    for bad, message in [("node1", "expected NODE=HOST"), ("node1=h:0", "port must be"),
                         ("node1=h:x", "port must be"), ("node1=a,node1=b", "more than once"), ("", "got nothing"),
                         ("node1=a b", "host name")]:
        with pytest.raises(ConfigError, match=message):
            parse_ssh_hosts(bad)


# -- splitbrain run --remote ssh --------------------------------------------------------------------------

def ssh_run_command(nodes: SSHNodes, store: Path, *args: str, accept_new: bool = True) -> list[str]:
    """`splitbrain run` on these hosts, its runs in ``store``, with ``args``."""
    return [sys.executable, "-m", "splitbrain.harness.cli", "run", "--remote", "ssh", "--ssh-hosts", nodes.hosts_option,
            "--ssh-key", str(nodes.key_file), "--ssh-dir", str(nodes.host_dir), "--store", str(store), *args,
            *(["--ssh-accept-new"] if accept_new else [])]


def _run_over_ssh(nodes: SSHNodes, store: Path, *args: str,
                  accept_new: bool = True) -> tuple[subprocess.CompletedProcess[str], Path]:
    cmd = ssh_run_command(nodes, store, "--time-limit", "6", "--nemesis-interval", "1.5", "--rate", "80",
                          "--recovery", "1.5", *args, accept_new=accept_new)
    # A HOME of its own: the run must not read (or depend on) this machine's ~/.ssh/known_hosts.
    env = {**os.environ, "HOME": str(store.parent)}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=150, stdin=subprocess.DEVNULL, env=env)
    run_dir = (store / "latest").resolve() if (store / "latest").exists() else store
    return done, run_dir


def _assert_nothing_left_on_the_hosts(nodes: SSHNodes, run_dir: Path) -> None:
    from splitbrain.harness.store import RunDir

    assert wait_for(lambda: not _processes_besides_sshd(nodes), timeout=10), _processes_besides_sshd(nodes)
    root = f"{nodes.host_dir}/splitbrain-{RunDir(run_dir).run_id}"
    for node in nodes.cluster.nodes:  # the run's directory is gone from every host ...
        remote = nodes.remote(node)
        try:
            assert remote.exec(["test", "-e", root]).rc == 1, f"{root} is left on {node}"
        finally:
            remote.close()
    # ... and the run wrote nothing on this machine that was meant for the hosts
    assert not any(nodes.host_dir.iterdir()), sorted(map(str, nodes.host_dir.rglob("*")))[:10]
    for node in nodes.cluster.nodes:
        rules = subprocess.run(["ip", "netns", "exec", nodes.cluster.netns[node], "iptables", "-S"],
                               capture_output=True, text=True).stdout
        assert "SB-" not in rules, f"{node} kept the nemesis's iptables chains:\n{rules}"


@pytest.mark.timeout(200)
def test_a_whole_run_over_ssh_is_valid_and_leaves_nothing(ssh_nodes: SSHNodes, tmp_path: Path) -> None:
    done, run_dir = _run_over_ssh(ssh_nodes, tmp_path / "runs", "--nemesis", "partition,kill,pause", "--seed", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "VALID" in done.stdout
    results = json.loads((run_dir / "results.json").read_text())
    assert results["valid"] is True
    by_f = results["stats"]["by_f"]
    assert by_f["read"]["ok_count"] > 20 and by_f["write"]["ok_count"] > 10  # the run really did something
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    faults = {op["f"] for op in history if op["process"] == "nemesis" and op["type"] != "invoke"}
    assert {"start-partition", "kill", "pause", "heal"} <= faults, faults
    # Every fault reached its host through SSH (the one allowed miss: no leader to pick at that moment).
    failed = [op for op in history if op["process"] == "nemesis" and op.get("error")
              and "named no primary" not in op["error"]]
    assert not failed, failed
    test = json.loads((run_dir / "test.json").read_text())
    assert test["remote"] == "ssh" and len(test["ssh_hosts"]) == 3
    for node in ssh_nodes.cluster.nodes:  # each server's log, downloaded from its host
        assert (run_dir / "nodes" / node / "server.log").stat().st_size > 0
    _assert_nothing_left_on_the_hosts(ssh_nodes, run_dir)
    from splitbrain.harness.store import RunDir

    assert RunDir(run_dir).run_id not in leftover_runs()  # an SSH run makes no local nodes of its own


# Prints "wall_ns mono_ns" every 20 ms: the offset between the two shows the skew the process sees.
CLOCK_PRINTER = "import time\nwhile True:\n    print(time.time_ns(), time.monotonic_ns(), flush=True)\n    time.sleep(0.02)\n"


@pytest.mark.timeout(60)
def test_the_clock_nemesis_skews_a_process_on_an_ssh_host(ssh_nodes: SSHNodes, tmp_path: Path) -> None:
    """Started through the skew launcher on the host; each offset written over SSH; reset heals it."""
    from splitbrain.control.spawn import ssh_spawner
    from splitbrain.nemesis.clock import ClockNemesis

    remote = ssh_nodes.remote("node2", work_dir=f"{ssh_nodes.host_dir}/clock-test")

    class OneHost:
        def remote(self, node: str) -> SSHRemote:
            return remote

    clock = ClockNemesis()
    process = ssh_spawner(OneHost(), clock)("node2", [sys.executable, "-c", CLOCK_PRINTER], {}, "printer.log")
    log = f"{remote.work_dir}/printer.log"

    def skew_seen_s() -> float | None:
        """The last line's wall clock minus this process's real wall clock, in seconds."""
        lines = remote.exec(["tail", "-n", "1", log]).stdout.split()
        return (int(lines[0]) - time.time_ns()) / 1e9 if len(lines) == 2 else None

    try:
        assert wait_for(lambda: skew_seen_s() is not None, timeout=10)
        assert abs(skew_seen_s() or 0) < 30  # not skewed yet
        assert clock.mechanisms() == {"node2": {"vdso"}}
        clock.bump({"node2": -3_600_000})  # an hour back
        assert wait_for(lambda: -3630 < (skew_seen_s() or 0) < -3570, timeout=10), skew_seen_s()
        clock.reset(["node2"])
        assert wait_for(lambda: abs(skew_seen_s() or -3600) < 30, timeout=10), skew_seen_s()
    finally:
        process.kill()
        process.wait(10)
        remote.exec(["rm", "-rf", remote.work_dir])
        remote.close()


@pytest.mark.timeout(150)
def test_a_run_with_clock_faults_over_ssh_skews_every_node(ssh_nodes: SSHNodes, tmp_path: Path) -> None:
    done, run_dir = _run_over_ssh(ssh_nodes, tmp_path / "runs", "--nemesis", "partition,clock", "--seed", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    clock_ops = [op for op in history if op["process"] == "nemesis" and op["type"] != "invoke"
                 and op["f"] in ("bump-clock", "strobe-clock", "reset-clock")]
    assert clock_ops and not any(op.get("error") for op in clock_ops), clock_ops
    harness_log = (run_dir / "harness.log").read_text()
    for node in ssh_nodes.cluster.nodes:
        assert f"clock skew on {node} via vdso" in harness_log, harness_log[-2000:]
    _assert_nothing_left_on_the_hosts(ssh_nodes, run_dir)


@pytest.mark.timeout(400)
def test_stale_read_bug_is_caught_over_ssh(ssh_nodes: SSHNodes, tmp_path: Path) -> None:
    verdicts = []
    for seed in (1, 2, 3, 4, 5):
        done, run_dir = _run_over_ssh(ssh_nodes, tmp_path / f"runs-{seed}", "--nemesis", "partition",
                                      "--bug", "stale-read", "--seed", str(seed))
        verdicts.append((seed, done.returncode, done.stdout[-300:] + done.stderr[-300:]))
        assert done.returncode in (0, 1), done.stdout + done.stderr
        _assert_nothing_left_on_the_hosts(ssh_nodes, run_dir)
        if done.returncode == 1:
            assert "INVALID" in done.stdout
            return
    pytest.fail(f"stale reads over SSH were not caught in 5 seeds: {verdicts}")


@pytest.mark.timeout(120)
def test_an_interrupted_run_over_ssh_heals_and_leaves_nothing(ssh_nodes: SSHNodes, tmp_path: Path) -> None:
    store = tmp_path / "runs"
    cmd = ssh_run_command(ssh_nodes, store, "--time-limit", "30", "--nemesis", "partition,pause",
                          "--nemesis-interval", "0.5", "--seed", "4")
    run = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "HOME": str(tmp_path)})
    try:
        history = store / "latest" / "history.jsonl"
        # Interrupt while faults are in force: once the nemesis has partitioned or paused something.
        assert wait_for(lambda: history.exists() and '"start-partition"' in history.read_text()
                           and '"pause"' in history.read_text(), timeout=60)
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert "(interrupted by SIGINT)" in out, out + err
    run_dir = (store / "latest").resolve()
    assert (run_dir / "nodes" / "node1" / "server.log").stat().st_size > 0
    _assert_nothing_left_on_the_hosts(ssh_nodes, run_dir)


@pytest.mark.timeout(60)
def test_an_unknown_host_key_stops_the_run_with_one_line(ssh_nodes: SSHNodes, tmp_path: Path) -> None:
    done, _ = _run_over_ssh(ssh_nodes, tmp_path / "runs", "--nemesis", "kill", accept_new=False)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "is not known" in done.stderr and "--ssh-accept-new" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert wait_for(lambda: not _processes_besides_sshd(ssh_nodes), timeout=10), _processes_besides_sshd(ssh_nodes)


@pytest.mark.timeout(60)
def test_an_unreachable_host_stops_the_run_with_one_line(ssh_nodes: SSHNodes, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from splitbrain.harness.cli import main

    address = ssh_nodes.cluster.addresses["node3"]
    hosts = ssh_nodes.hosts_option.replace(f"{address}:{SSH_PORT}", f"{address}:{SSH_PORT + 1}")  # no sshd there
    code = main(["run", "--remote", "ssh", "--ssh-hosts", hosts, "--ssh-key", str(ssh_nodes.key_file),
                 "--ssh-accept-new", "--nemesis", "kill", "--store", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 4 and f"node3: cannot reach root@{address}:{SSH_PORT + 1}" in err, err  # the run failed
    assert len(err.strip().splitlines()) == 1
    assert wait_for(lambda: not _processes_besides_sshd(ssh_nodes), timeout=10), _processes_besides_sshd(ssh_nodes)


@pytest.mark.timeout(60)
def test_a_refused_run_releases_its_log(ssh_nodes: SSHNodes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from splitbrain.harness.cli import main

    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/known_hosts: every host key is unknown
    before = list(logging.getLogger().handlers)
    code = main(["run", "--remote", "ssh", "--ssh-hosts", ssh_nodes.hosts_option, "--ssh-key",
                 str(ssh_nodes.key_file), "--nemesis", "kill", "--store", str(tmp_path / "runs")])
    assert code == 3 and "is not known" in capsys.readouterr().err
    assert logging.getLogger().handlers == before  # a later run's lines do not land in this run's log


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args, message", [
    (["--remote", "ssh"], "--remote ssh needs --ssh-hosts"),
    (["--ssh-hosts", "node1=10.0.0.1,node2=10.0.0.2,node3=10.0.0.3"], "go with --remote ssh"),
    (["--remote", "ssh", "--ssh-hosts", "node1=a:99999"], "port must be"),
    (["--remote", "ssh", "--ssh-hosts", "a=h1,b=h2,c=h3"], "expected the nodes node1, node2, node3"),
    (["--remote", "ssh", "--ssh-hosts", "node1=h1,node2=h2,node3=h3", "--nodes", "5"], "3 hosts but --nodes is 5"),
    (["--remote", "ssh", "--ssh-hosts", "node1=h1,node2=h2,node3=h3", "--nemesis", "kill",
      "--ssh-key", "/nonexistent/key"], "--ssh-key /nonexistent/key: no such readable file"),
    (["--remote", "ssh", "--ssh-hosts", "node1=h1,node2=h2,node3=h3", "--nemesis", "kill",
      "--ssh-dir", "runs-here"], "--ssh-dir must be an absolute path on the hosts"),
    (["--ssh-dir", "/srv/splitbrain"], "go with --remote ssh"),
])
def test_bad_ssh_options_exit_3_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              args: list[str], message: str) -> None:
    from splitbrain.harness.cli import main

    assert main(["run", "--store", str(tmp_path / "runs"), *args]) == 3
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()  # refused before anything started
