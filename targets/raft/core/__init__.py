"""The sans-IO Raft core and the replicated state machine (see API.md in this folder)."""

from splitbrain.targets.raft.core.node import (
    BUGS,
    CANDIDATE,
    FOLLOWER,
    LEADER,
    PRE_CANDIDATE,
    Config,
    NotLeader,
    RaftNode,
)
from splitbrain.targets.raft.core.state_machine import ApplyResult, StateMachine
from splitbrain.targets.raft.core.types import (
    MSG_TYPES,
    Entry,
    HardState,
    Message,
    PersistedState,
    ReadState,
    Ready,
)

__all__ = [
    "BUGS", "CANDIDATE", "FOLLOWER", "LEADER", "MSG_TYPES", "PRE_CANDIDATE", "ApplyResult", "Config", "Entry",
    "HardState", "Message", "NotLeader", "PersistedState", "RaftNode", "Ready", "ReadState", "StateMachine",
]
