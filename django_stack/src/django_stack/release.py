"""The release this process runs: a hash of the code and templates it was started from.

The first pass of a two-pass page is keyed by it (``TWOPASS_RELEASE``): a deploy or a rollback shows on every
cached page at once, and two releases serving side by side during a rolling deploy never serve each other's
pages (an old page can name static files the new release no longer has). The same source gives the same id on
every web node, so the nodes of one release share their first passes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

# What decides the HTML a release renders: its code, templates and static sources (hashed names).
SUFFIXES = frozenset({".py", ".html", ".txt", ".css", ".js", ".svg", ".json", ".png", ".ico", ".woff2"})
SKIPPED_DIRS = frozenset({"venv", ".venv", "__pycache__", "node_modules", "tests", "testing", "bench"})


def release_id(root: str | os.PathLike, *, exclude: tuple = ()) -> str:
    root = Path(root).resolve()
    excluded = {Path(e).resolve() for e in exclude}
    digest = hashlib.sha256()
    for directory, dirs, files in os.walk(root):
        here = Path(directory)
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith(".")
                         and (here / d).resolve() not in excluded)
        for name in sorted(files):
            path = here / name
            if path.suffix not in SUFFIXES:
                continue
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:12]
