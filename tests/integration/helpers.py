"""What several integration test modules need: skip markers for root and Docker, waiting, the TCP echo
server and client that show whether traffic gets through, and process and namespace probes."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from splitbrain.control.remote import LocalRemote

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="local nodes need root")


def docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "version"], capture_output=True, timeout=20).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


needs_docker = pytest.mark.skipif(os.geteuid() != 0 or not docker_answers(),
                                  reason="needs root and a running Docker daemon (.ci/setup starts one)")


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def process_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")  # a zombie is dead, just unreaped
    except FileNotFoundError:
        return True


def run_namespaces(run_id: str) -> list[str]:
    """The network namespaces of local-nodes run ``run_id`` that exist now."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    names = [line.split()[0] for line in listing.splitlines() if line.strip()]
    return [name for name in names if re.fullmatch(rf"sb-{re.escape(run_id)}-(n\d+|sw)", name)]


ECHO_PORT = 7007
ECHO_SERVER = """
import socketserver, sys
class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while data := self.request.recv(4096):
            self.request.sendall(data)
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer.daemon_threads = True
socketserver.ThreadingTCPServer(("0.0.0.0", int(sys.argv[1])), Echo).serve_forever()
"""
ECHO_CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
s.settimeout(float(sys.argv[3]))
s.sendall(b"ping")
assert s.recv(4) == b"ping"
"""


def host_reaches(address: str, timeout: float = 0.5) -> bool:
    """This machine gets an echo back from the echo server at ``address``."""
    try:
        with socket.create_connection((address, ECHO_PORT), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"ping")
            return s.recv(4) == b"ping"
    except OSError:
        return False


def node_reaches(remote: LocalRemote, address: str, timeout: float = 0.5) -> bool:
    """The node of ``remote`` gets an echo back from the echo server at ``address``."""
    client = [sys.executable, "-c", ECHO_CLIENT, address, str(ECHO_PORT), str(timeout)]
    return remote.exec(client, timeout=10).ok


def needs_sshd_and(*programs: str) -> pytest.MarkDecorator:
    """Skip unless root, openssh-server and each of ``programs`` (a path, or a name on PATH) are here."""
    def present(program: str) -> bool:
        return os.path.exists(program) if program.startswith("/") else shutil.which(program) is not None

    missing = [p for p in ("/usr/sbin/sshd", *programs) if not present(p)]
    return pytest.mark.skipif(os.geteuid() != 0 or bool(missing),
                              reason=f"needs root and {', '.join(missing) or 'nothing else'} (.ci/setup installs them)")


def run(test: Any, console: bool = False, out: Any = None) -> Any:
    """Run a test given as TestOptions (the command line's way: names and strings) or as a Test.

    Always with a relative store, as `splitbrain run` is used (--store runs): from the store's parent
    directory, so every target is tested resolving its paths from a relative one."""
    from splitbrain.harness.run import run as run_test
    from splitbrain.harness.test import TestOptions

    built = test.build() if isinstance(test, TestOptions) else test
    store = Path(built.store)
    with contextlib.chdir(store.parent if store.is_absolute() else Path.cwd()):
        built.store = store.name if store.is_absolute() else store
        return run_test(built, console=console, out=out if out is not None else open(os.devnull, "w"))
