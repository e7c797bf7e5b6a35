"""``splitbrain serve``: a read-only web view of a store of runs (Jepsen's ``lein run serve``).

    /                   every run: filter by verdict, target, workload; search by seed or name; sort by date
    /api/runs           the same rows as JSON
    /runs/<run>/        a run's files; /runs/<run>/report.html its report (drawn on the fly when missing)
    /runs/<path>        any file under the store, as it is
    /zip/<run>          the run directory as a zip

Only GET and HEAD; only files under the store (no absolute paths, no ``..``, no symlink that leads out);
on a loopback address, only requests whose Host names it (a web page elsewhere cannot read the store
through DNS rebinding). One broken run is one row that says so, never an error page for the list.
"""

from __future__ import annotations

import html
import logging
import mimetypes
import os
import shutil
import zipfile
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from splitbrain.harness.serve.index import RunIndex, is_run_dir
from splitbrain.harness.serve.paths import resolve_in_store

log = logging.getLogger("splitbrain.serve")
TEXT_TYPES = {".jsonl": "text/plain", ".log": "text/plain", ".json": "application/json", ".edn": "text/plain",
              ".dot": "text/plain", ".tmp": "text/plain", ".cfg": "text/plain", ".conf": "text/plain"}
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class StoreServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, store: Path, host: str, port: int) -> None:
        self.store = store.resolve()
        self.index = RunIndex(self.store)
        super().__init__((host, port), StoreHandler)
        self.bound_host = host

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}/"


class StoreHandler(BaseHTTPRequestHandler):
    server: StoreServer
    server_version = "splitbrain-serve"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # -- methods -----------------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._handle(head=False)

    def do_HEAD(self) -> None:
        self._handle(head=True)

    def _refuse_method(self) -> None:
        self._send_text(HTTPStatus.METHOD_NOT_ALLOWED, "read-only: only GET and HEAD", extra={"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method

    # -- routing -----------------------------------------------------------------------------------------
    def _handle(self, head: bool) -> None:
        self.head = head
        if not self._host_allowed():
            self._send_text(HTTPStatus.FORBIDDEN, "this server answers only requests for its own address")
            return
        path = urlsplit(self.path).path
        try:
            if path == "/":
                self._index()
            elif path == "/api/runs":
                self._send_json([row.to_json() for row in self.server.index.rows()])
            elif path == "/favicon.ico":
                self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
            elif path.startswith("/runs/"):
                self._file(path[len("/runs/"):])
            elif path.startswith("/zip/"):
                self._zip(path[len("/zip/"):])
            else:
                self._send_text(HTTPStatus.NOT_FOUND, "no such page")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception:  # noqa: BLE001 - this request fails, the server and the other pages go on
            log.exception("serve: %s failed", self.path)
            self._send_text(HTTPStatus.INTERNAL_SERVER_ERROR, "this page failed; see the server's log")

    def _host_allowed(self) -> bool:
        if self.server.bound_host not in LOOPBACK:
            return True
        host = (self.headers.get("Host") or "").strip()
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]")[0]
        return name in LOOPBACK

    def _index(self) -> None:
        from splitbrain.harness.report.page import render

        rows = self.server.index.rows()
        page = render("index.html", title=f"runs in {self.server.store}", rows=rows,
                      targets=sorted({r.target for r in rows if r.target}),
                      workloads=sorted({r.workload for r in rows if r.workload}))
        self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")

    def _file(self, rel: str) -> None:
        target = resolve_in_store(self.server.store, rel)
        wants_report = rel.endswith("/report.html") or rel == "report.html"
        if target is None and wants_report:
            run = resolve_in_store(self.server.store, rel[: -len("report.html")])
            if run is not None and run.is_dir() and is_run_dir(run):
                self._report_on_the_fly(run)
                return
        if target is None:
            self._send_text(HTTPStatus.NOT_FOUND, "no such file in the store")
            return
        if target.is_dir():
            if not rel.endswith("/") and rel:
                self.send_response(HTTPStatus.MOVED_PERMANENTLY)
                self.send_header("Location", "/runs/" + rel + "/")
                self.end_headers()
                return
            self._listing(target)
            return
        ctype = TEXT_TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype == "application/json":
            ctype += "; charset=utf-8"
        size = target.stat().st_size
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(size))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if not self.head:
            with open(target, "rb") as fh:
                shutil.copyfileobj(fh, self.wfile, 1 << 16)

    def _report_on_the_fly(self, run: Path) -> None:
        from splitbrain.harness.report import render_report, run_inputs

        page, _ = render_report(run_inputs(run))
        self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")

    def _listing(self, folder: Path) -> None:
        store = self.server.store
        rel = folder.relative_to(store).as_posix()
        items = []
        for entry in sorted(folder.iterdir(), key=lambda p: (not p.is_dir(), p.name)):
            inside = resolve_in_store(store, (folder / entry.name).relative_to(store).as_posix())
            if inside is None:
                continue  # a symlink out of the store: not shown, not served
            name = entry.name + ("/" if entry.is_dir() else "")
            items.append(f'<li><a href="{html.escape(name, quote=True)}">{html.escape(name)}</a></li>')
        run_links = ""
        if is_run_dir(folder):
            run_links = (f'<p><a href="report.html">report</a> · <a href="/zip/{html.escape(rel, quote=True)}">'
                         f"zip of the run</a> · <a href=\"/\">all runs</a></p>")
        body = (f"<!DOCTYPE html><html><head><meta charset=utf-8><link rel=icon href='data:,'><title>{html.escape(rel)}"
                f"</title></head><body><h1>{html.escape(rel or '/')}</h1>{run_links}<ul>{''.join(items)}</ul></body></html>")
        self._send(HTTPStatus.OK, body.encode(), "text/html; charset=utf-8")

    def _zip(self, rel: str) -> None:
        run = resolve_in_store(self.server.store, rel.rstrip("/"))
        if run is None or not run.is_dir() or not is_run_dir(run):
            self._send_text(HTTPStatus.NOT_FOUND, "no such run in the store")
            return
        name = run.relative_to(self.server.store).as_posix().replace("/", "_") or "run"
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Disposition", f'attachment; filename="{name}.zip"')
        self.send_header("Connection", "close")  # no length known in advance: the end of the stream ends it
        self.end_headers()
        if self.head:
            return
        # zipfile finds the stream unseekable and writes data descriptors: nothing is held in memory
        with zipfile.ZipFile(self.wfile, "w", zipfile.ZIP_DEFLATED) as zf:
            for folder, dirs, files in os.walk(run, followlinks=False):
                dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(folder, d)))
                for f in sorted(files):
                    path = Path(folder, f)
                    if path.is_symlink() or not path.is_file():
                        continue
                    zf.write(path, Path(name, path.relative_to(run)).as_posix())
        self.close_connection = True

    # -- answers -----------------------------------------------------------------------------------------
    def _send(self, status: HTTPStatus, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not getattr(self, "head", False) and body:
            self.wfile.write(body)

    def _send_text(self, status: HTTPStatus, text: str, extra: dict[str, str] | None = None) -> None:
        self._send(status, (text + "\n").encode(), "text/plain; charset=utf-8", extra)

    def _send_json(self, value: Any) -> None:
        import json

        self._send(HTTPStatus.OK, json.dumps(value).encode(), "application/json")


def serve(store: Path, host: str = "127.0.0.1", port: int = 8000, out: Any = None) -> None:
    """Serve ``store`` until interrupted."""
    server = StoreServer(store, host, port)
    if out is not None:
        print(f"serving {server.store} at {server.url} (Ctrl-C stops)", file=out, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
