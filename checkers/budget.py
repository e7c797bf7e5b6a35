"""How much memory a search may use: by default a quarter of what the machine has available now."""

from __future__ import annotations

import time

_cache: list[float] = []  # [when read, bytes]: reading /proc/meminfo costs more than a small check


def available_memory() -> int:
    """Bytes of memory available now (MemAvailable), or 4 GiB when the system does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def default_max_memory() -> int:
    """A quarter of the memory available (read again when the last reading is more than a second old)."""
    now = time.monotonic()
    if not _cache or now - _cache[0] > 1.0:
        _cache[:] = [now, available_memory() // 4]
    return int(_cache[1])
