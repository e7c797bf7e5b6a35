"""`splitbrain serve`: only files under the store, read-only, a list that survives broken runs, an index
that reads only what changed."""

from __future__ import annotations

import http.client
import io
import json
import os
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from splitbrain.harness.serve import RunIndex, StoreServer, index
from splitbrain.harness.serve.paths import resolve_in_store

from tests.report_helpers import make_run

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    s = tmp_path / "store"
    make_run(s, "raft-register", "20260101T000000.000", n_ops=100, seed=1, stale_at=50)
    make_run(s, "raft-register", "20260102T000000.000", n_ops=100, seed=2)
    broken = s / "etcd-lock" / "20260103T000000.000"
    broken.mkdir(parents=True)
    (broken / "test.json").write_text('{"target": "etcd", "workl')  # half-written
    (broken / "history.jsonl").write_text("")
    half = make_run(s, "raft-lock", "20260104T000000.000", n_ops=50, seed=3, workload="lock")
    (half / "results.json").write_text('{"valid": fal')  # half-written results
    (tmp_path / "secret.txt").write_text("outside the store")
    (s / "raft-register" / "20260101T000000.000" / "escape").symlink_to(tmp_path / "secret.txt")
    (s / "raft-register" / "20260101T000000.000" / "escape-dir").symlink_to(tmp_path)
    (s / "latest").symlink_to(Path("raft-register") / "20260102T000000.000")
    return s


@pytest.fixture
def server(store: Path) -> Iterator[StoreServer]:
    srv = StoreServer(store, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=10)


def get(srv: StoreServer, path: str, method: str = "GET", host: str | None = None) -> tuple[int, bytes, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=30)
    headers = {"Host": host} if host else {}
    conn.putrequest(method, path, skip_host=bool(host), skip_accept_encoding=True)  # the path exactly as given
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.endheaders()
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body, dict(response.getheaders())


def test_paths_outside_the_store_are_refused(store: Path, tmp_path: Path):
    root = store.resolve()
    run = "raft-register/20260101T000000.000"
    assert resolve_in_store(root, f"{run}/history.jsonl") == root / run / "history.jsonl"
    assert resolve_in_store(root, "latest/test.json") == root / "raft-register/20260102T000000.000/test.json"
    for bad in ("../secret.txt", f"{run}/../../../secret.txt", "%2e%2e/secret.txt", "/etc/passwd", "//etc/passwd",
                f"{run}/escape", f"{run}/escape-dir/secret.txt", "a%00b", "..%5csecret.txt", "%ff", "~/x"):
        assert resolve_in_store(root, bad) is None, bad


def test_the_server_serves_files_of_the_store_and_nothing_else(server: StoreServer):
    status, body, headers = get(server, "/runs/raft-register/20260101T000000.000/history.jsonl")
    assert status == 200 and body.startswith(b"{") and headers["Content-Type"].startswith("text/plain")
    for bad in ("/runs/../secret.txt", "/runs/%2e%2e/secret.txt", "/runs/%2e%2e%2fsecret.txt",
                "/runs/raft-register/20260101T000000.000/escape", "/runs//etc/passwd",
                "/runs/raft-register/20260101T000000.000/escape-dir/secret.txt", "/zip/..", "/zip/%2e%2e/"):
        status, body, _ = get(server, bad)
        assert status == 404 and b"outside the store" not in body, bad
    listing = get(server, "/runs/raft-register/20260101T000000.000/")[1].decode()
    assert "history.jsonl" in listing and "escape" not in listing


def test_the_server_is_read_only_and_answers_only_for_its_own_address(server: StoreServer):
    for method in ("POST", "PUT", "DELETE"):
        assert get(server, "/", method)[0] == 405
    assert get(server, "/", host="attacker.example:80")[0] == 403
    assert get(server, "/", host=f"localhost:{server.server_address[1]}")[0] == 200


def test_the_list_shows_broken_and_half_written_runs_as_such(server: StoreServer):
    status, body, _ = get(server, "/api/runs")
    rows = {r["path"]: r for r in json.loads(body)}
    assert status == 200 and len(rows) == 4  # runs/latest is a link, not a fifth run
    assert rows["raft-register/20260101T000000.000"]["verdict"] == "invalid"
    assert rows["raft-register/20260102T000000.000"]["verdict"] == "valid"
    assert rows["etcd-lock/20260103T000000.000"]["verdict"] == "broken"
    assert rows["raft-lock/20260104T000000.000"]["verdict"] == "broken"
    assert "results.json" in rows["raft-lock/20260104T000000.000"]["note"]
    assert [r["date"] for r in json.loads(body)] == sorted((r["date"] for r in rows.values()), reverse=True)
    status, page, _ = get(server, "/")
    assert status == 200 and page.decode().count('class="run"') == 4


def test_a_run_without_a_report_gets_one_drawn_on_the_fly_without_writing(server: StoreServer, store: Path):
    run = store / "raft-register" / "20260102T000000.000"
    assert not (run / "report.html").exists()
    status, body, _ = get(server, "/runs/raft-register/20260102T000000.000/report.html")
    assert status == 200 and b'id="timeline-data"' in body
    assert not (run / "report.html").exists()
    assert get(server, "/runs/etcd-lock/20260103T000000.000/report.html")[0] == 200  # broken: a report that says so


def test_the_zip_of_a_run_has_its_files_and_no_link_out(server: StoreServer):
    status, body, headers = get(server, "/zip/raft-register/20260101T000000.000")
    assert status == 200 and headers["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(body)).namelist()
    prefix = "raft-register_20260101T000000.000/"
    assert {prefix + n for n in ("test.json", "history.jsonl", "results.json", "nodes/node1/server.log")} <= set(names)
    assert not any("escape" in n or "secret" in n for n in names)


def test_the_index_rereads_only_runs_whose_files_changed(tmp_path: Path, monkeypatch):
    store = tmp_path / "store"
    for i in range(30):
        make_run(store, "t", f"2026010{i // 10}T0000{i % 10:02d}.000", n_ops=10, node_logs=False)
    reads = []
    real = index.read_row
    monkeypatch.setattr(index, "read_row", lambda s, run: reads.append(run) or real(s, run))
    idx = RunIndex(store)
    assert len(idx.rows()) == 30 and len(reads) == 30
    assert len(idx.rows()) == 30 and len(reads) == 30  # nothing changed: nothing read
    changed = store / "t" / "20260100T000003.000" / "results.json"
    changed.write_text('{"valid": false}')
    os.utime(changed, ns=(1, 1))
    rows = {r.path: r for r in idx.rows()}
    assert len(reads) == 31 and rows["t/20260100T000003.000"].verdict == "invalid"


def test_serve_refuses_a_missing_store_and_a_busy_port_in_one_line(tmp_path: Path, capsys):
    import socket

    from splitbrain.harness.cli import main

    assert main(["serve", "--store", str(tmp_path / "nope")]) == 3
    assert "no such directory" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["serve", "--store", str(tmp_path), "--port", str(busy.getsockname()[1])]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot listen on 127.0.0.1" in err
