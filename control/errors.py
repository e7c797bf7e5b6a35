"""The harness's error types: one per kind of fault, each printable as one actionable line."""

from __future__ import annotations

from collections.abc import Sequence


class ConfigError(Exception):
    """The test cannot run as configured (bad option, missing privilege, missing tool)."""


class RemoteError(Exception):
    """A command on a node failed: names the node, the command and what it printed on stderr."""

    def __init__(self, node: str, cmd: Sequence[str], stderr: str) -> None:
        self.node = node
        self.cmd = list(cmd)
        self.stderr = stderr
        super().__init__(str(self))

    def __str__(self) -> str:
        # Only the last line of stderr: the CLI prints one line, and the last line is the one that says why.
        lines = [line for line in self.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else "failed"
        return f"{self.node}: {' '.join(self.cmd)}: {reason}"


class HostError(Exception):
    """This machine cannot do what the run needs (Docker that cannot start a container, ...): the run
    itself cannot happen here (exit 4), though the options are fine."""
