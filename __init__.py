"""splitbrain: a Jepsen-style fault-injection test harness.

The repository root is this package: its folders are its subpackages (``splitbrain.histories``,
``splitbrain.checkers``, ``splitbrain.control``, ``splitbrain.nemesis``, ``splitbrain.targets``,
``splitbrain.harness``). Names are loaded on first use, so ``import splitbrain`` costs nothing.
"""

from __future__ import annotations

__version__ = "0.1.0"
