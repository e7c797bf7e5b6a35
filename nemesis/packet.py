"""Packet faults: loss and delay on chosen nodes.

Two mechanisms, chosen per node by probing the kernel:

- netem (``tc qdisc replace dev IFACE root netem delay D J loss P%``) where the kernel has it, which real
  hosts usually do. It acts on what the node sends.
- Without netem (this project's CI kernel has none): loss is an iptables ``statistic`` DROP on INPUT
  (on OUTPUT the sender would get EPERM at once, unlike real loss), and delay is an NFQUEUE on OUTPUT
  served by a small listener (``python -m splitbrain.nemesis.packet delay ...``, started inside the node) that
  holds each packet for delay +- jitter before accepting it, so jitter also reorders. If the listener
  dies, ``--queue-bypass`` lets packets through instead of blackholing the node.

Rules live in chains of our own (SB-PACKET-IN, SB-PACKET-OUT), so heal flushes just those.
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import select
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from splitbrain.control.clusters import PACKET_CHAIN_IN, PACKET_CHAIN_OUT
from splitbrain.control.errors import RemoteError
from splitbrain.control.remote import ProcessHandle, Remote, run_checked
from splitbrain.control.spawn import node_python
from splitbrain.histories.op import Op
from splitbrain.nemesis.base import completed
from splitbrain.nemesis.process import pick_nodes

START, STOP = "start-packet", "stop-packet"
CHAIN_IN, CHAIN_OUT = PACKET_CHAIN_IN, PACKET_CHAIN_OUT
DEFAULT_QUEUE = 23571
BIND_WAIT_S = 5.0
STOP_WAIT_S = 3.0
COMMAND_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class PacketFault:
    loss: float = 0.0  # probability a packet is lost, 0..1
    delay_ms: float = 0.0
    jitter_ms: float = 0.0

    @property
    def is_none(self) -> bool:
        return self.loss <= 0 and self.delay_ms <= 0


def parse_fault(value: Mapping[str, Any]) -> PacketFault:
    """The fault an op's value asks for; ValueError with what was expected otherwise."""
    unknown = set(value) - {"nodes", "loss", "delay_ms", "jitter_ms"}
    if unknown:
        raise ValueError(
            f"unknown packet fault fields {sorted(unknown)}; expected loss, delay_ms, jitter_ms, nodes"
        )
    try:
        fault = PacketFault(
            float(value.get("loss", 0)), float(value.get("delay_ms", 0)), float(value.get("jitter_ms", 0))
        )
    except (TypeError, ValueError) as e:
        raise ValueError(f"packet fault: loss, delay_ms and jitter_ms must be numbers ({e})") from e
    if not 0 <= fault.loss <= 1:
        raise ValueError(f"packet loss must be a probability in [0, 1], got {fault.loss}")
    if fault.delay_ms < 0 or fault.jitter_ms < 0:
        raise ValueError("packet delay_ms and jitter_ms must not be negative")
    return fault


def random_fault(rng: random.Random) -> PacketFault:
    if rng.random() < 0.5:
        return PacketFault(loss=rng.choice([0.05, 0.1, 0.2, 0.3, 0.5]))
    delay = rng.choice([10, 20, 50, 100, 200])
    return PacketFault(delay_ms=delay, jitter_ms=delay / 2)


def netem_args(fault: PacketFault) -> list[str]:
    """The netem options for a fault (after ``tc qdisc replace dev IFACE root netem``)."""
    args: list[str] = []
    if fault.delay_ms > 0:
        args += ["delay", f"{fault.delay_ms:g}ms"]
        if fault.jitter_ms > 0:
            args.append(f"{fault.jitter_ms:g}ms")
    if fault.loss > 0:
        args += ["loss", f"{fault.loss * 100:g}%"]
    return args


def loss_rules(fault: PacketFault) -> list[str]:
    rules = [f"-A {CHAIN_IN} -i lo -j RETURN"]
    if fault.loss >= 1:
        rules.append(f"-A {CHAIN_IN} -j DROP")
    elif fault.loss > 0:
        rules.append(f"-A {CHAIN_IN} -m statistic --mode random --probability {fault.loss:.6f} -j DROP")
    return rules


def delay_rules(fault: PacketFault, queue: int) -> list[str]:
    rules = [f"-A {CHAIN_OUT} -o lo -j RETURN"]
    if fault.delay_ms > 0:
        rules.append(f"-A {CHAIN_OUT} -j NFQUEUE --queue-num {queue} --queue-bypass")
    return rules


def netem_available(remote: Remote) -> bool:
    """Whether the node's kernel has netem: try it in a scratch network namespace on the node."""
    probe = ["unshare", "--net", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]
    return remote.exec(probe, timeout=10).ok


class PacketNemesis:
    """``start-packet`` with value ``{"nodes": <node choice>, "loss": p, "delay_ms": d, "jitter_ms": j}``
    (None: a random fault on random nodes) puts that fault on the chosen nodes and clears it elsewhere;
    ``stop-packet`` heals. ``use_netem``: None probes each node, False forces the iptables mechanism."""

    def __init__(
        self,
        remotes: Mapping[str, Remote],
        rng: random.Random,
        *,
        use_netem: bool | None = None,
        iptables: str = "iptables",
        queue: int = DEFAULT_QUEUE,
    ) -> None:
        self.remotes = dict(remotes)
        self.rng = rng
        self.use_netem = use_netem
        self.iptables = iptables
        self.queue = queue
        self.faults: dict[str, PacketFault] = {}
        self.delayers: dict[str, ProcessHandle] = {}
        self._netem: dict[str, bool] = {}
        self._hooked: set[str] = set()
        # heal (e.g. on Ctrl-C, from another thread) waits for an apply in flight, so no fault outlives it.
        self._lock = threading.RLock()

    @property
    def nodes(self) -> list[str]:
        return sorted(self.remotes)

    def fs(self) -> set[str]:
        return {START, STOP}

    def setup(self, test: Any) -> None:
        self.heal(test)

    def mechanism(self, node: str) -> str:
        return "netem" if self._has_netem(node) else "iptables+nfqueue"

    def invoke(self, test: Any, op: Op) -> Op:
        with self._lock:
            return self._invoke(test, op)

    def _invoke(self, test: Any, op: Op) -> Op:
        if op.f == STOP:
            self.heal(test)
            return completed(op, "packets healed")
        if op.f != START:
            return completed(op, None, error=f"packet nemesis does not handle {op.f!r}")
        try:
            if op.value is None:
                fault, nodes = random_fault(self.rng), pick_nodes(None, self.nodes, self.rng)
            elif isinstance(op.value, Mapping):
                fault, nodes = (
                    parse_fault(op.value),
                    pick_nodes(op.value.get("nodes", "all"), self.nodes, self.rng),
                )
            else:
                raise ValueError(
                    f"expected a packet fault such as {{'loss': 0.2, 'nodes': 'one'}}, got {op.value!r}"
                )
        except ValueError as e:
            return completed(op, op.value, error=str(e))
        errors: list[str] = []
        for node in self.nodes:
            try:
                self.apply(node, fault if node in nodes else PacketFault())
            except RemoteError as e:
                errors.append(str(e))
        value = {"nodes": nodes, **asdict(fault), "mechanism": {n: self.mechanism(n) for n in nodes}}
        return completed(op, value, error="; ".join(errors) or None)

    def apply(self, node: str, fault: PacketFault) -> None:
        """Make ``fault`` the node's packet fault (PacketFault() clears it)."""
        with self._lock:
            if self.faults.get(node, PacketFault()) == fault and not fault.is_none:
                return
            if self._has_netem(node):
                self._apply_netem(node, fault)
            else:
                self._apply_iptables(node, fault)
            if fault.is_none:
                self.faults.pop(node, None)
            else:
                self.faults[node] = fault

    def heal(self, test: Any) -> None:
        errors: list[RemoteError] = []
        with self._lock:
            for node in self.nodes:
                try:
                    self._clear(node)
                except RemoteError as e:
                    errors.append(e)
            self.faults.clear()
        if errors:
            raise errors[0]

    # -- netem -----------------------------------------------------------------------------------------

    def _has_netem(self, node: str) -> bool:
        if self.use_netem is not None:
            return self.use_netem
        if node not in self._netem:
            self._netem[node] = netem_available(self.remotes[node])
        return self._netem[node]

    def _interface(self, node: str) -> str:
        """The interface the node's traffic leaves by: the one its default or subnet route uses."""
        routes = run_checked(
            self.remotes[node], ["ip", "-o", "-4", "route", "show"], timeout=COMMAND_TIMEOUT_S
        ).stdout.split()
        if "dev" not in routes:
            raise RemoteError(node, ["ip", "route"], "no route: cannot tell which interface to delay")
        return routes[routes.index("dev") + 1]

    def _apply_netem(self, node: str, fault: PacketFault) -> None:
        iface = self._interface(node)
        if fault.is_none:
            self._clear_netem(node)
            return
        run_checked(
            self.remotes[node], ["tc", "qdisc", "replace", "dev", iface, "root", "netem", *netem_args(fault)]
        )

    def _clear_netem(self, node: str) -> None:
        remote = self.remotes[node]
        iface = self._interface(node)
        # Delete the root qdisc only if it is a netem: anything else is not ours.
        if (
            " netem "
            in remote.exec(["tc", "qdisc", "show", "dev", iface, "root"], timeout=COMMAND_TIMEOUT_S).stdout
        ):
            run_checked(remote, ["tc", "qdisc", "del", "dev", iface, "root"], timeout=COMMAND_TIMEOUT_S)

    # -- iptables + NFQUEUE ----------------------------------------------------------------------------

    def _apply_iptables(self, node: str, fault: PacketFault) -> None:
        self._hook(node)
        old = self.faults.get(node, PacketFault())
        if (old.delay_ms, old.jitter_ms) != (fault.delay_ms, fault.jitter_ms):
            # The queue has one listener: take the rule away, replace the listener, put the rule back.
            self._replace_chains(node, loss_rules(fault), delay_rules(PacketFault(), self.queue))
            self._stop_delayer(node)
            if fault.delay_ms > 0:
                self._start_delayer(node, fault)
        self._replace_chains(node, loss_rules(fault), delay_rules(fault, self.queue))

    def _clear(self, node: str) -> None:
        if self._has_netem(node):
            self._clear_netem(node)
            return
        self._replace_chains(node, loss_rules(PacketFault()), delay_rules(PacketFault(), self.queue))
        self._stop_delayer(node)

    def _hook(self, node: str) -> None:
        if node in self._hooked:
            return
        remote = self.remotes[node]
        self._replace_chains(node, [], [])
        for hook, chain in (("INPUT", CHAIN_IN), ("OUTPUT", CHAIN_OUT)):
            if not remote.exec([self.iptables, "-w", "-C", hook, "-j", chain], timeout=COMMAND_TIMEOUT_S).ok:
                run_checked(
                    remote, [self.iptables, "-w", "-I", hook, "1", "-j", chain], timeout=COMMAND_TIMEOUT_S
                )
        self._hooked.add(node)

    def _replace_chains(self, node: str, rules_in: list[str], rules_out: list[str]) -> None:
        lines = [f":{CHAIN_IN} - [0:0]", f":{CHAIN_OUT} - [0:0]", *rules_in, *rules_out]
        restore = "*filter\n" + "\n".join(lines) + "\nCOMMIT\n"
        restore_cmd = [f"{self.iptables}-restore", "-w", "--noflush"]
        run_checked(self.remotes[node], restore_cmd, stdin=restore, timeout=COMMAND_TIMEOUT_S)

    def _start_delayer(self, node: str, fault: PacketFault) -> None:
        remote = self.remotes[node]
        python, python_env = node_python(remote)
        cmd = [
            python, "-m", "splitbrain.nemesis.packet", "delay",
            "--queue", str(self.queue),
            "--delay-ms", f"{fault.delay_ms:g}",
            "--jitter-ms", f"{fault.jitter_ms:g}",
            "--seed", str(self.rng.randrange(2**32)),
        ]  # fmt: skip
        handle = remote.spawn(cmd, env=python_env, log="packet-delay.log")
        self.delayers[node] = handle
        deadline = time.monotonic() + BIND_WAIT_S
        while time.monotonic() < deadline:
            if not handle.alive():
                raise RemoteError(
                    node, cmd, f"the delay listener exited (see {getattr(handle, 'log', 'its log')})"
                )
            if _queue_bound(remote, self.queue):
                return
            time.sleep(0.02)
        self._stop_delayer(node)
        raise RemoteError(node, cmd, f"the delay listener did not bind queue {self.queue} in {BIND_WAIT_S}s")

    def _stop_delayer(self, node: str) -> None:
        handle = self.delayers.pop(node, None)
        if handle is None:
            return
        handle.kill(signal.SIGTERM)  # it lets every held packet go, then exits
        if handle.wait(STOP_WAIT_S) is None:
            handle.kill(signal.SIGKILL)
            handle.wait(STOP_WAIT_S)


def _queue_bound(remote: Remote, queue: int) -> bool:
    listing = remote.exec(["cat", "/proc/net/netfilter/nfnetlink_queue"], timeout=COMMAND_TIMEOUT_S).stdout
    return any(line.split()[:1] == [str(queue)] for line in listing.splitlines())


# -- the NFQUEUE delay listener (runs inside a node) ----------------------------------------------------
# Speaks nfnetlink_queue directly (linux/netfilter/nfnetlink_queue.h), so it needs nothing but Python.

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLMSG_ERROR = 2
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN = 1
NF_ACCEPT = 1
QUEUE_MAXLEN = 65536
NLMSG_HEADER = struct.Struct("=IHHII")


def nl_attr(attr_type: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return struct.pack("=HH", length, attr_type) + data + b"\0" * (-length % 4)


def nfq_message(msg_type: int, queue: int, attrs: bytes, flags: int = NLM_F_REQUEST, seq: int = 0) -> bytes:
    # nfgenmsg: family, version 0, resource id (the queue number, big-endian)
    payload = struct.pack("!BBH", socket.AF_UNSPEC, 0, queue) + attrs
    header = NLMSG_HEADER.pack(
        NLMSG_HEADER.size + len(payload), (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags, seq, 0
    )
    return header + payload


def verdict_message(queue: int, packet_id: int) -> bytes:
    return nfq_message(
        NFQNL_MSG_VERDICT, queue, nl_attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id))
    )


def parse_messages(data: bytes) -> tuple[list[int], list[int]]:
    """(packet ids queued to us, error codes of acks) in a buffer of netlink messages."""
    packet_ids: list[int] = []
    errors: list[int] = []
    offset = 0
    while offset + NLMSG_HEADER.size <= len(data):
        length, msg_type, _, _, _ = NLMSG_HEADER.unpack_from(data, offset)
        if length < NLMSG_HEADER.size:
            break
        body = offset + NLMSG_HEADER.size
        if msg_type == NLMSG_ERROR:
            errors.append(-struct.unpack_from("=i", data, body)[0])
        elif msg_type == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            attr = body + 4  # after nfgenmsg
            while attr + 4 <= offset + length:
                attr_len, attr_type = struct.unpack_from("=HH", data, attr)
                if attr_len < 4:
                    break
                if attr_type & 0x3FFF == NFQA_PACKET_HDR:
                    packet_ids.append(struct.unpack_from("!I", data, attr + 4)[0])
                attr += attr_len + (-attr_len % 4)
        offset += length + (-length % 4)
    return packet_ids, errors


def bind_queue(queue: int) -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
    sock.bind((0, 0))
    config = [
        nl_attr(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, socket.AF_INET)),
        nl_attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))
        + nl_attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", QUEUE_MAXLEN))
        + nl_attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN))
        + nl_attr(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)),
    ]
    for seq, attrs in enumerate(config, 1):
        sock.send(nfq_message(NFQNL_MSG_CONFIG, queue, attrs, NLM_F_REQUEST | NLM_F_ACK, seq))
        _, errors = parse_messages(sock.recv(65536))
        if any(errors):
            raise OSError(max(errors), f"binding NFQUEUE {queue}: {os.strerror(max(errors))}")
    return sock


def run_delayer(queue: int, delay_ms: float, jitter_ms: float, seed: int) -> None:
    """Hold every packet of ``queue`` for delay +- jitter, then accept it; on SIGTERM accept all and exit."""
    rng = random.Random(seed)
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sock = bind_queue(queue)
    sock.setblocking(False)
    print(f"bound NFQUEUE {queue}: delay {delay_ms}ms +- {jitter_ms}ms", flush=True)
    held: list[tuple[float, int, int]] = []  # (release time, arrival order, packet id)
    arrivals = 0
    while not stopping:
        now = time.monotonic()
        wait = min(0.1, max(0.0, held[0][0] - now)) if held else 0.1
        readable, _, _ = select.select([sock], [], [], wait)
        if readable:
            while True:
                try:
                    data = sock.recv(1 << 16)
                except BlockingIOError:
                    break
                now = time.monotonic()
                for packet_id in parse_messages(data)[0]:
                    hold = max(0.0, delay_ms + rng.uniform(-jitter_ms, jitter_ms)) / 1000
                    heapq.heappush(held, (now + hold, arrivals, packet_id))
                    arrivals += 1
        release_until = time.monotonic()
        due = []
        while held and held[0][0] <= release_until:
            due.append(verdict_message(queue, heapq.heappop(held)[2]))
        for start in range(0, len(due), 1000):  # keep each send well under the socket's buffer
            sock.send(b"".join(due[start : start + 1000]))
    # Let every held packet go before the queue disappears (the kernel would drop them).
    sock.setblocking(True)
    pending = [verdict_message(queue, packet_id) for _, _, packet_id in held]
    for start in range(0, len(pending), 1000):
        sock.send(b"".join(pending[start : start + 1000]))
    sock.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m splitbrain.nemesis.packet")
    sub = parser.add_subparsers(dest="command", required=True)
    delay = sub.add_parser("delay", help="hold the packets of an NFQUEUE for a while (run inside a node)")
    delay.add_argument("--queue", type=int, default=DEFAULT_QUEUE)
    delay.add_argument("--delay-ms", type=float, required=True)
    delay.add_argument("--jitter-ms", type=float, default=0.0)
    delay.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        run_delayer(args.queue, args.delay_ms, args.jitter_ms, args.seed)
    except OSError as e:
        print(f"packet delay: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
