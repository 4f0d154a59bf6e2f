"""Read the configuration file the stack's roles write for a Django project.

The file is JSON (Ansible writes it with ``to_nice_json``, so quoting is never a question). Its path comes from
the ``STACK_CONFIG`` environment variable (the web role sets it), default ``/etc/django-stack/config.json``.
What differs per environment lives there: hosts, ports, secrets. The ``project`` object holds the project's own
keys; the project reads them with the same typed :class:`Reader` (``load(project=...)``), so a typo in them is
refused like one in the stack's keys. A missing or malformed key stops
start-up with a :class:`ConfigError` naming the key, e.g. ``database.replicas[1].port: expected an integer``;
so does a key the schema does not know (``database.replica_read_timout: unknown key (did you mean
replica_read_timeout?)``), which would otherwise silently keep the default.

Secrets (``secret_key``, the database passwords) are :class:`Secret` strings: their repr is masked, so they never
show in a repr of the configuration, in ``manage.py diffsettings``, in an error page or a log line that formats
a setting; ``str()`` and every string operation give the real value to the code that needs it.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

DEFAULT_PATH = "/etc/django-stack/config.json"
ENV_VAR = "STACK_CONFIG"


class ConfigError(Exception):
    """The configuration file is missing, unreadable or has a bad key."""


class Secret(str):
    """A string whose repr never shows it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'********'"


@dataclass(frozen=True)
class DatabaseHost:
    host: str
    port: int
    user: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class DatabaseConfig:
    name: str
    primary: DatabaseHost
    replicas: tuple[DatabaseHost, ...]
    connect_timeout: int
    read_timeout: int
    replica_read_timeout: int
    down_cooldown: int
    conn_max_age: int


@dataclass(frozen=True)
class CacheConfig:
    servers: tuple[str, ...]
    key_prefix: str
    socket_timeout: float
    dead_retry: int


@dataclass(frozen=True)
class MediaConfig:
    url: str
    servers: tuple[str, ...]
    timeout: float


@dataclass(frozen=True)
class Config:
    secret_key: str = field(repr=False)
    debug: bool
    allowed_hosts: tuple[str, ...]
    csrf_trusted_origins: tuple[str, ...]
    https: bool
    hsts_seconds: int
    hsts_preload: bool
    admin_enabled: bool
    database: DatabaseConfig
    cache: CacheConfig
    media: MediaConfig
    static_root: str
    read_your_writes_seconds: int
    log_level: str
    # What the project's reader made of the file's ``project`` object (None without a reader).
    project: object = None


_MISSING = object()


class Reader:
    """Typed access to one JSON object, with error messages that name the full key."""

    def __init__(self, data, path: str = "", readers: list | None = None):
        if not isinstance(data, dict):
            raise ConfigError(f"{path or 'the file'}: expected an object")
        self.data = data
        self.path = path
        self.used: set[str] = set()
        # Every reader of the file, so that unknown keys can be found once the whole file has been read.
        self.readers = readers if readers is not None else []
        self.readers.append(self)

    def _name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def check_unknown(self) -> None:
        """Refuse the keys no one asked for (in every object of the file): a typo must not keep a default."""
        for reader in self.readers:
            for key in sorted(set(reader.data) - reader.used, key=str):
                close = difflib.get_close_matches(str(key), sorted(reader.used), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ConfigError(f"{reader._name(key)}: unknown key{hint}")

    def _get(self, key, default):
        self.used.add(key)
        value = self.data.get(key, default)
        if value is _MISSING:
            raise ConfigError(f"{self._name(key)}: missing")
        return value

    def str(self, key, default=_MISSING, *, nonempty=True) -> str:
        value = self._get(key, default)
        if not isinstance(value, str) or (nonempty and not value):
            raise ConfigError(f"{self._name(key)}: expected a non-empty string")
        return value

    def int(self, key, default=_MISSING, *, minimum=0) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{self._name(key)}: expected an integer >= {minimum}")
        return value

    def float(self, key, default=_MISSING) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{self._name(key)}: expected a positive number")
        return float(value)

    def bool(self, key, default=_MISSING) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self._name(key)}: expected true or false")
        return value

    def strs(self, key, default=_MISSING, *, nonempty=True) -> tuple[str, ...]:
        value = self._get(key, default)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{self._name(key)}: expected a list of non-empty strings")
        if nonempty and not value:
            raise ConfigError(f"{self._name(key)}: expected at least one entry")
        return tuple(value)

    def secret(self, key, default=_MISSING, *, nonempty=True) -> Secret:
        return Secret(self.str(key, default, nonempty=nonempty))

    def obj(self, key, default=_MISSING) -> "Reader":
        return Reader(self._get(key, default), self._name(key), self.readers)

    def objs(self, key, default=_MISSING) -> list["Reader"]:
        value = self._get(key, default)
        if not isinstance(value, list):
            raise ConfigError(f"{self._name(key)}: expected a list")
        return [Reader(item, f"{self._name(key)}[{i}]", self.readers) for i, item in enumerate(value)]


def _db_host(reader: Reader, defaults: dict) -> DatabaseHost:
    return DatabaseHost(
        host=reader.str("host"),
        port=reader.int("port", defaults["port"], minimum=1),
        user=reader.str("user", defaults["user"]),
        password=reader.secret("password", defaults["password"], nonempty=False),
    )


def parse(data: dict, project: Callable[[Reader], object] | None = None) -> Config:
    """Validate the decoded file and return a :class:`Config`.

    ``project`` reads the file's ``project`` object (a :class:`Reader` of it) and returns the project's own
    settings, kept as ``Config.project``; without it the file must have no ``project`` keys.
    """
    top = Reader(data)
    db = top.obj("database")
    defaults = {
        "port": db.int("port", 3306, minimum=1),
        "user": db.str("user"),
        "password": db.secret("password", nonempty=False),
    }
    database = DatabaseConfig(
        name=db.str("name"),
        primary=_db_host(db.obj("primary"), defaults),
        # Each replica may override port and credentials: a replica is a whole address, not only a host name.
        replicas=tuple(_db_host(r, defaults) for r in db.objs("replicas", [])),
        connect_timeout=db.int("connect_timeout", 1, minimum=1),
        read_timeout=db.int("read_timeout", 30, minimum=1),
        # A replica that stops answering on an open connection costs at most this before the read fails over.
        replica_read_timeout=db.int("replica_read_timeout", 2, minimum=1),
        down_cooldown=db.int("down_cooldown", 30, minimum=0),
        conn_max_age=db.int("conn_max_age", 60, minimum=0),
    )
    cache_reader = top.obj("cache")
    cache = CacheConfig(
        servers=cache_reader.strs("servers"),
        key_prefix=cache_reader.str("key_prefix", "stack"),
        socket_timeout=cache_reader.float("socket_timeout", 0.5),
        dead_retry=cache_reader.int("dead_retry", 30),
    )
    media_reader = top.obj("media")
    media = MediaConfig(
        url=media_reader.str("url"),
        servers=media_reader.strs("servers"),
        timeout=media_reader.float("timeout", 10),
    )
    if not media.url.endswith("/"):
        raise ConfigError("media.url: must end with '/'")
    for i, server in enumerate(media.servers):
        if not server.startswith(("http://", "https://")) or not server.endswith("/"):
            raise ConfigError(f"media.servers[{i}]: expected an http(s) URL ending with '/'")
    secret_key = top.secret("secret_key")
    if len(secret_key) < 50:
        raise ConfigError("secret_key: must be at least 50 characters long")
    parsed = Config(
        secret_key=secret_key,
        debug=top.bool("debug", False),
        allowed_hosts=top.strs("allowed_hosts"),
        csrf_trusted_origins=top.strs("csrf_trusted_origins", [], nonempty=False),
        https=top.bool("https", True),
        hsts_seconds=top.int("hsts_seconds", 31536000),
        hsts_preload=top.bool("hsts_preload", True),
        admin_enabled=top.bool("admin_enabled", True),
        database=database,
        cache=cache,
        media=media,
        static_root=top.str("static_root"),
        read_your_writes_seconds=top.int("read_your_writes_seconds", 10),
        log_level=top.str("log_level", "INFO"),
        project=project(top.obj("project", {})) if project else None,
    )
    if project is None:
        top.obj("project", {})
    top.check_unknown()
    return parsed


def load(path: str | os.PathLike | None = None, *, project: Callable[[Reader], object] | None = None) -> Config:
    """Read and validate the configuration file (``$STACK_CONFIG``, default ``/etc/django-stack/config.json``).

    ``project``: a function that reads the file's ``project`` object (see :func:`parse`).
    """
    path = Path(path or os.environ.get(ENV_VAR) or DEFAULT_PATH)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration file {path} (set {ENV_VAR}): {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    try:
        return parse(data, project)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
