"""``splitbrain serve``: browse a store of runs (see server.py); the index of runs is index.py."""

from splitbrain.harness.serve.index import RunIndex, RunRow, run_dirs
from splitbrain.harness.serve.server import StoreServer, serve

__all__ = ["RunIndex", "RunRow", "StoreServer", "run_dirs", "serve"]
