"""Run one node of the internal Raft store.

    python -m splitbrain.targets.raft.server --id n1 --listen 127.0.0.1:7001 \\
        --peers n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003 --data-dir /tmp/n1 \\
        [--client-listen 127.0.0.1:8001] [--bug NAME ...] [--tick-ms 50] [--seed S]

``--listen`` is where peers reach this node; clients speak HTTP on ``--client-listen``, by default the
same host with the port plus 1000 (7001 -> 8001). Exit codes: 0 stopped by SIGTERM/SIGINT, 3 bad
options, 4 the node cannot start (damaged log, address in use) or its disk failed, 5 a second
signal while stopping. Logs go to stderr with timestamps.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from splitbrain.targets.raft.core import BUGS
from splitbrain.targets.raft.server.node import NodeFailure, RaftServer, ServerConfig
from splitbrain.targets.raft.server.storage import StorageCorruptError
from splitbrain.targets.raft.server.transport import parse_address

EXIT_BAD_OPTIONS = 3
EXIT_NODE_ERROR = 4
EXIT_SIGNALLED_TWICE = 5
CLIENT_PORT_OFFSET = 1000

log = logging.getLogger("splitbrain.targets.raft.server")


class OptionsError(Exception):
    """A command-line option is missing or malformed."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise OptionsError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m splitbrain.targets.raft.server", description="One node of the internal Raft store.")
    p.add_argument("--id", required=True, help="this node's id, one of --peers")
    p.add_argument("--listen", required=True, help="HOST:PORT for peer traffic")
    p.add_argument("--peers", required=True, help="ID=HOST:PORT,... for every node, this one included")
    p.add_argument("--data-dir", required=True, help="directory of the durable log")
    p.add_argument("--client-listen", help="HOST:PORT for the HTTP API (default: --listen port + 1000)")
    p.add_argument("--bug", action="append", default=[], help=f"switch on a deliberate bug: {', '.join(sorted(BUGS))}")
    p.add_argument("--tick-ms", type=int, default=50, help="duration of one Raft tick (default 50)")
    p.add_argument("--election-ticks", type=int, default=10, help="election timeout in ticks (default 10)")
    p.add_argument("--heartbeat-ticks", type=int, default=2, help="heartbeat interval in ticks (default 2)")
    p.add_argument("--request-timeout", type=float, default=2.0, help="seconds a client request may wait")
    p.add_argument("--seed", type=int, help="seed for election timeouts (default: random)")
    return p


def parse_peers(text: str) -> dict[str, tuple[str, int]]:
    peers: dict[str, tuple[str, int]] = {}
    for item in text.split(","):
        node_id, sep, address = item.strip().partition("=")
        if not sep or not node_id:
            raise OptionsError(f"--peers: expected ID=HOST:PORT, got {item.strip()!r}")
        if node_id in peers:
            raise OptionsError(f"--peers: {node_id} is listed twice")
        try:
            peers[node_id] = parse_address(address)
        except ValueError as e:
            raise OptionsError(f"--peers: {node_id}: {e}") from None
    return peers


def config_from_args(argv: list[str]) -> ServerConfig:
    """The validated configuration; raises OptionsError with one line naming the bad option."""
    args = _parser().parse_args(argv)
    peers = parse_peers(args.peers)
    if args.id not in peers:
        raise OptionsError(f"--id {args.id} is not one of --peers ({', '.join(peers)})")
    try:
        listen = parse_address(args.listen)
        if args.client_listen:
            client_listen = parse_address(args.client_listen)
        else:
            client_listen = (listen[0], listen[1] + CLIENT_PORT_OFFSET)
            if client_listen[1] > 65535:
                raise ValueError(f"--listen port {listen[1]} + {CLIENT_PORT_OFFSET} is not a port: give --client-listen")
    except ValueError as e:
        raise OptionsError(f"--listen/--client-listen: {e}") from None
    unknown = set(args.bug) - BUGS
    if unknown:
        raise OptionsError(f"--bug: unknown {', '.join(sorted(unknown))} (known: {', '.join(sorted(BUGS))})")
    for name in ("tick_ms", "election_ticks", "heartbeat_ticks"):
        if getattr(args, name) < 1:
            raise OptionsError(f"--{name.replace('_', '-')} must be at least 1")
    if args.heartbeat_ticks >= args.election_ticks:
        raise OptionsError("--heartbeat-ticks must be smaller than --election-ticks")
    if args.request_timeout <= 0:
        raise OptionsError("--request-timeout must be positive")
    data_dir = Path(args.data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise OptionsError(f"--data-dir {data_dir} exists and is not a directory")
    return ServerConfig(id=args.id, listen=listen, client_listen=client_listen, peers=peers, data_dir=data_dir,
                        bugs=frozenset(args.bug), tick_ms=args.tick_ms, election_ticks=args.election_ticks,
                        heartbeat_ticks=args.heartbeat_ticks, request_timeout_s=args.request_timeout,
                        seed=args.seed)


async def serve(config: ServerConfig) -> None:
    server = RaftServer(config)
    loop = asyncio.get_running_loop()
    signals_seen = 0

    def on_signal() -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen > 1:
            os._exit(EXIT_SIGNALLED_TWICE)  # a stop that hangs must not keep the node alive
        log.info("%s: stopping", config.id)
        server.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    await server.run()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s",
                        datefmt="%Y-%m-%dT%H:%M:%S")
    try:
        config = config_from_args(sys.argv[1:] if argv is None else argv)
    except OptionsError as e:
        print(f"raft server: {e}", file=sys.stderr)
        return EXIT_BAD_OPTIONS
    try:
        asyncio.run(serve(config))
    except StorageCorruptError as e:
        log.error("cannot start: damaged log: %s", e)
        return EXIT_NODE_ERROR
    except NodeFailure as e:
        log.error("stopped: %s", e)
        return EXIT_NODE_ERROR
    except OSError as e:
        log.error("cannot start: %s", e)
        return EXIT_NODE_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
