"""Which database servers failed recently, shared by every process of this node.

A server is marked down only when a *new* connection to it failed (refused, or no handshake within
``connect_timeout``), never because an established connection broke or a query was slow. It is "down" for a
cool-down: later connections skip it at once instead of each paying the connect timeout again, and it is tried
again when the cool-down ends (or as soon as any process of the node connected to it again).

The state lives in one small file per server in a directory of this node (``FAILOVER_STATE_DIR``, default a
directory in the process's temporary directory: uWSGI's workers share it, systemd's ``PrivateTmp`` keeps it the
service's own), so when one uWSGI worker found a server down, every other worker of the node skips it at once: a
dead replica costs one timeout per node, not one per process. The file holds the deadline on the system-wide
monotonic clock. Where the directory cannot be written the state is kept in the process only.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from pathlib import Path

_lock = threading.Lock()
_local: dict[tuple[str, int], float] = {}
_state_dir: Path | None = None
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def default_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"dbfailover-{os.getuid()}"


def configure(path: str | os.PathLike | None) -> None:
    """Use ``path`` (created if missing) for the node-wide state; ``None``: the default directory."""
    global _state_dir
    _state_dir = Path(path) if path else default_dir()


def _dir() -> Path:
    global _state_dir
    if _state_dir is None:
        _state_dir = default_dir()
    return _state_dir


def _file(address: tuple[str, int]) -> Path:
    return _dir() / f"{_SAFE.sub('_', str(address[0]))}_{int(address[1])}"


def _read(address: tuple[str, int]) -> float | None:
    try:
        return float(_file(address).read_text())
    except (OSError, ValueError):
        return None


def mark_down(address: tuple[str, int], cooldown: float) -> None:
    until = time.monotonic() + cooldown
    path = _file(address)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        temporary.write_text(repr(until))
        os.replace(temporary, path)
    except OSError:
        with _lock:  # the directory cannot be written: this process keeps it to itself
            _local[address] = until


def mark_up(address: tuple[str, int]) -> None:
    with _lock:
        _local.pop(address, None)
    try:
        _file(address).unlink()
    except OSError:
        pass


def _until(address: tuple[str, int]) -> float | None:
    shared = _read(address)
    if shared is not None:
        return shared
    with _lock:
        return _local.get(address)


def is_down(address: tuple[str, int]) -> bool:
    until = _until(address)
    return until is not None and time.monotonic() < until


def down_for(address: tuple[str, int]) -> float:
    """Seconds left in the address's cool-down (0 when it is not down)."""
    until = _until(address)
    return max(0.0, until - time.monotonic()) if until else 0.0


def clear() -> None:
    """Forget every failure (tests, and ``manage.py`` commands that must see the real state)."""
    with _lock:
        _local.clear()
    try:
        for path in _dir().iterdir():
            path.unlink(missing_ok=True)
    except OSError:
        pass
