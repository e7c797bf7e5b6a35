"""Which file a URL names: only files under the store, by a relative path that stays there."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote


def resolve_in_store(store: Path, url_path: str) -> Path | None:
    """The existing file or folder ``url_path`` (percent-encoded, relative to the store) names, with every
    symlink resolved; None when it would leave the store: an absolute path, a ``..`` component, a NUL or
    a backslash, or a symlink (at any level) that resolves outside it. ``store`` must be resolved."""
    try:
        rel = unquote(url_path, errors="strict")
    except UnicodeDecodeError:
        return None
    if "\0" in rel or "\\" in rel or rel.startswith("/") or rel.startswith("~"):
        return None
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    real = Path(os.path.realpath(store.joinpath(*parts)))
    if real != store and store not in real.parents:
        return None
    return real if real.exists() else None
