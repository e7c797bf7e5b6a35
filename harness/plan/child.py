"""One run of a plan, in a process of its own: ``python -m splitbrain.harness.plan.child SPEC OUTCOME``.

SPEC is the run's test.json-style options (TestOptions); the run goes exactly as `splitbrain run` would
(its own signal handling, reaper, log file, clean-up), its console output to this process's stdout, and
what became of it to OUTCOME (JSON, written whole). A process per run keeps runs apart: each has its own
signal handlers, its own harness.log handler, and dies alone. The plan forwards its signals to it.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any


def _write(path: str, data: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, default=str)
    os.replace(tmp, path)


PR_SET_PDEATHSIG = 1


def _stop_with_the_plan() -> None:
    """SIGTERM to this run when the plan that started it dies (kill -9 of test-all): the run then heals
    and cleans up as for any SIGTERM, instead of going on alone."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return  # not Linux: the run goes on to its end and cleans up then
    if os.getppid() == 1:  # the plan died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def main(argv: Sequence[str]) -> int:
    _stop_with_the_plan()
    from splitbrain.control.errors import ConfigError, HostError, RemoteError
    from splitbrain.harness.run import run
    from splitbrain.harness.stopping import Interrupted
    from splitbrain.harness.test import TestOptions

    spec, outcome_path = argv
    try:
        with open(spec, encoding="utf-8") as f:
            options = TestOptions.from_json(json.load(f), spec)
        outcome = run(options.build(), console=False)
    except Interrupted as e:  # stopped before the run had made anything
        _write(outcome_path, {"run_dir": None, "valid": None, "interrupted": str(e), "error": None})
        return 128 + e.signum
    except (ConfigError, HostError, RemoteError) as e:
        bad_input = isinstance(e, ConfigError)
        print(f"error: {e}", file=sys.stderr, flush=True)
        _write(outcome_path, {"run_dir": None, "valid": None, "error": str(e), "bad_input": bad_input})
        return 3 if bad_input else 4
    except Exception as e:  # noqa: BLE001 - the harness failed: why goes to the console log and the plan
        traceback.print_exc()
        _write(outcome_path, {"run_dir": None, "valid": None, "error": f"{type(e).__name__}: {e}"})
        return 4
    _write(outcome_path, {"run_dir": str(outcome.run_dir.path), "valid": outcome.valid,
                          "exit_code": outcome.exit_code, "interrupted": outcome.interrupted, "error": outcome.error})
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
