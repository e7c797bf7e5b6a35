"""Fewer, bigger peer messages per Ready: what the core emits per proposal and per read, sent per batch.

The core sends an append for each proposal (pipelined: each continues where the previous one ended) and
a heartbeat round for each ReadIndex read. Within one Ready they can be combined:

- appends to one peer in one term are slices of the same leader log (a leader never rewrites its own
  log within its term), so a slice that starts inside or right at the end of the previous one is
  merged with it: one message carrying their union and the newest commit;
- of several heartbeats to one peer only the last is sent: its round, once acknowledged, confirms every
  earlier round's reads too (the core confirms rounds up to the acknowledged one);
- of a follower's accepting append responses to one leader only the one with the highest index is sent,
  and of its heartbeat responses the last (it answers the newest round). Rejections are all sent.

Any of this is safe because Raft is correct under message loss; it only must not hurt progress, which
is why appends are merged rather than dropped (a dropped middle slice of a pipeline forces a rejection
and a resend).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from splitbrain.targets.raft.core import Message

# A merged append never grows past this many entries: a catching-up peer gets several messages.
MAX_MERGED_ENTRIES = 1024


def merged_append(first: Message, later: Message) -> Message | None:
    """One append carrying both, or None when they cannot be one message."""
    if first.to != later.to or first.term != later.term:
        return None
    first_end = first.index + len(first.entries)
    if not first.index <= later.index <= first_end:
        return None  # a gap between them, or ``later`` restarts before ``first`` (after a rejection)
    keep = later.index - first.index
    entries = first.entries[:keep] + later.entries
    if len(entries) < len(first.entries):
        entries = first.entries  # ``later`` lies inside ``first``
    if len(entries) > MAX_MERGED_ENTRIES:
        return None
    return replace(first, entries=entries, commit=max(first.commit, later.commit))


def coalesce_messages(messages: Sequence[Message]) -> list[Message]:
    """The messages of one Ready, combined as described in the module docstring, in their original order."""
    slots: list[Message | None] = []
    open_append: dict[str, int] = {}  # peer -> slot of the append that later ones may merge into
    last_slot: dict[tuple[str, str, int], int] = {}  # (peer, type, term) -> slot of the one kept so far
    for message in messages:
        if message.type == "append":
            at = open_append.get(message.to)
            current = slots[at] if at is not None else None
            merged = merged_append(current, message) if current is not None else None
            if at is not None and merged is not None:
                slots[at] = merged
                continue
            open_append[message.to] = len(slots)
        elif message.type in ("heartbeat", "heartbeat_resp") or (
                message.type == "append_resp" and not message.reject):
            key = (message.to, message.type, message.term)
            at = last_slot.get(key)
            if at is not None:
                kept = slots[at]
                assert kept is not None
                if message.type == "append_resp" and kept.index >= message.index:
                    continue  # the one kept already acknowledges more
                slots[at] = None
            last_slot[key] = len(slots)
        slots.append(message)
    return [m for m in slots if m is not None]
