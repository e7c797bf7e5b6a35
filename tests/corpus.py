"""Where the shared corpus of histories with known verdicts lives, and how to skip without it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


def corpus_files(folder: str) -> list[tuple[str, dict]]:
    """(file name, manifest entry) for every file with a verdict; [] when the corpus is absent."""
    manifest = CORPUS / folder / "manifest.json"
    if not manifest.exists():
        return []
    files = json.loads(manifest.read_text())["files"]
    return sorted((name, entry) for name, entry in files.items() if entry.get("expected") in ("valid", "invalid"))


def require_corpus() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"the shared corpus is absent ({CORPUS}); it is read from ../shared/corpus next to the repo")
