"""Django's MySQL backend, plus failover at connection time.

``get_new_connection`` walks the alias's ``FAILOVER`` addresses in order. Each address is complete (host, port,
user, password), so a replica on another port or with its own credentials is really tried, not the dead host
again. Only a **new** connection that fails (refused, or no handshake within ``connect_timeout``) marks a server
down, for ``FAILOVER_COOLDOWN`` seconds, shared by every process of the node (:mod:`dbfailover.registry`); later
connections skip it at once. The last address of the list (the primary: the only one of ``default``) is never
skipped: a restarted primary takes writes again on the first request after it answers. When the connection had
to use a fallback, it is closed at the end of a request once the preferred address's cool-down is over, so
traffic returns to it.

An established connection that broke (a restarted server, a failed health-check ping) is closed and replaced
by a new one; that alone never marks its server down. A server can also stop answering on an open connection
(a network partition, a frozen host): nothing is refused, reads just hang. Replicas therefore get a short read
timeout (``replica_read_timeout``). When a replica's read fails with a connection error outside a transaction,
a new connection to the same server is the probe that tells the two cases apart:

- the probe cannot connect: the server stopped answering. It is marked down (for the whole node) and the read is
  sent again on a new connection, which fails over;
- the probe connects and the read had run into the read timeout: the server answers, the *query* is slow. The
  error is raised (naming ``replica_read_timeout``), nothing is marked down, nothing is re-run elsewhere;
- the probe connects and the read had failed at once (a restarted server): the read is sent again on the probe's
  connection.
"""

from __future__ import annotations

import logging
import time

from django.db.backends import utils as backend_utils
from django.db.backends.mysql import base as mysql_base

from django_stack.dbfailover import registry

Database = mysql_base.Database
logger = logging.getLogger("django_stack.db.failover")

# Client and server error codes that mean "this server cannot be reached or is going away", as opposed to an
# error in the query or in the credentials (those must surface, not be hidden by a failover).
CONNECTION_ERRORS = frozenset(
    {
        1040,  # ER_CON_COUNT_ERROR: too many connections
        1053,  # ER_SERVER_SHUTDOWN
        2002,  # CR_CONNECTION_ERROR (socket)
        2003,  # CR_CONN_HOST_ERROR: refused or timed out
        2005,  # CR_UNKNOWN_HOST
        2006,  # CR_SERVER_GONE_ERROR
        2013,  # CR_SERVER_LOST: e.g. no handshake within the connect timeout
        2055,  # CR_SERVER_LOST_EXTENDED
    }
)


def is_connection_error(exc: BaseException) -> bool:
    """True for errors that mean a database server is unreachable (Django's or MySQLdb's exceptions)."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    for candidate in (exc, cause):
        args = getattr(candidate, "args", ())
        if args and isinstance(args[0], int) and args[0] in CONNECTION_ERRORS:
            return True
    return False


# The server answers but refuses writes: it is read-only (a primary that has just started, before its fencing
# check made it writable, or one fenced after a promotion elsewhere). Never a reason to mark it down.
READ_ONLY_ERRORS = frozenset({1290, 1836})  # ER_OPTION_PREVENTS_STATEMENT (--read-only), ER_READ_ONLY_MODE


def is_read_only_error(exc: BaseException) -> bool:
    for candidate in (exc, exc.__cause__, exc.__context__):
        args = getattr(candidate, "args", ())
        if args and isinstance(args[0], int) and args[0] in READ_ONLY_ERRORS:
            return True
    return False


def _label(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


class _RetryReadsOnReplica:
    """A cursor wrapper that sends a read again, on a new connection, when a replica stopped answering."""

    def _retrying(self, method, sql, params):
        started = time.monotonic()
        try:
            return method(sql, params)
        except Exception as exc:  # Django's OperationalError, or InterfaceError on a closed connection
            if not self.db.can_retry_read(exc):
                raise
            self.db.recover_from_failed_read(exc, time.monotonic() - started)
            self.cursor = self.db.create_cursor()
            return method(sql, params)

    def execute(self, sql, params=None):
        return self._retrying(super().execute, sql, params)

    def executemany(self, sql, param_list):
        return self._retrying(super().executemany, sql, param_list)


class FailoverCursorWrapper(_RetryReadsOnReplica, backend_utils.CursorWrapper):
    pass


class FailoverCursorDebugWrapper(_RetryReadsOnReplica, backend_utils.CursorDebugWrapper):
    pass


class DatabaseWrapper(mysql_base.DatabaseWrapper):
    connected_address: tuple[str, int] | None = None

    def make_cursor(self, cursor):
        return FailoverCursorWrapper(cursor, self)

    def make_debug_cursor(self, cursor):
        return FailoverCursorDebugWrapper(cursor, self)

    def can_retry_read(self, exc: BaseException) -> bool:
        """Only a replica's read, outside a transaction, on a server that stopped answering, is sent again: the
        primary's statements may have changed data, and a transaction cannot continue on another server."""
        return (
            bool(self.settings_dict.get("REPLICA_OF"))
            and not self.in_atomic_block
            and self.connected_address is not None
            and is_connection_error(exc)
        )

    def _cooldown(self) -> float:
        return float(self.settings_dict.get("FAILOVER_COOLDOWN", 30))

    def _read_timeout(self) -> float:
        return float(self.settings_dict.get("OPTIONS", {}).get("read_timeout") or 0)

    def recover_from_failed_read(self, exc: BaseException, took: float) -> None:
        """A replica's read failed on an established connection: find out why (see the module's docstring) and
        leave a connection on which the read can be sent again, or raise."""
        address = self.connected_address
        self.drop_failed_connection_quietly()
        timed_out = self._read_timeout() > 0 and took >= 0.9 * self._read_timeout()
        targets = self._failover_targets()
        target = next((t for t in targets if self._address(t) == address), None)
        if target is not None:
            try:
                probe = self._connect_to(target, self.get_connection_params())
            except Database.OperationalError as probe_exc:
                if not is_connection_error(probe_exc):
                    raise
                registry.mark_down(address, self._cooldown())
                logger.warning("database alias %s: %s stopped answering (%s; a new connection failed: %s), "
                               "marked down for %ss", self.alias, _label(address), exc, probe_exc,
                               int(self._cooldown()))
                self.ensure_connection()  # fails over
                return
            try:
                probe.close()
            except Database.Error:
                pass
            if timed_out:
                logger.warning("database alias %s: a query ran longer than replica_read_timeout (%ss) on %s, "
                               "which answers: the query is slow, the server is not down",
                               self.alias, self._read_timeout(), _label(address))
                raise exc
        self.ensure_connection()

    def is_usable(self):
        # A failed ping means this connection is broken, not that its server is down: Django closes it and the
        # next query opens a new one, and only a failure of *that* marks the server down.
        try:
            self.connection.ping()
        except Database.Error:
            return False
        return True

    def _failover_targets(self) -> list[dict]:
        targets = self.settings_dict.get("FAILOVER") or [
            {key: self.settings_dict[key] for key in ("HOST", "PORT", "USER", "PASSWORD")}
        ]
        return targets

    @staticmethod
    def _address(target: dict) -> tuple[str, int]:
        return (target["HOST"], int(target.get("PORT") or 3306))

    def drop_failed_connection_quietly(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - closing a dead connection may fail; it is gone either way
            self.connection = None
        self.connected_address = None

    def _connect_to(self, target: dict, conn_params: dict):
        params = dict(conn_params)
        params.pop("unix_socket", None)
        params.update(host=target["HOST"], port=self._address(target)[1], user=target["USER"],
                      password=target["PASSWORD"])
        return super().get_new_connection(params)

    def get_new_connection(self, conn_params):
        cooldown = self._cooldown()
        targets = self._failover_targets()
        skipped, failed = [], []
        last_error = None
        for i, target in enumerate(targets):
            address = self._address(target)
            last = i == len(targets) - 1
            # The last address (the primary, and the only address of "default") is never skipped.
            was_down = registry.is_down(address)
            if was_down and not last:
                skipped.append(address)
                continue
            try:
                connection = self._connect_to(target, conn_params)
            except Database.OperationalError as exc:
                if not is_connection_error(exc):
                    raise
                registry.mark_down(address, cooldown)
                failed.append((address, exc))
                last_error = exc
                logger.warning(
                    "database alias %s: %s unreachable (%s), marked down for %ss",
                    self.alias, _label(address), exc.args[-1] if exc.args else exc, int(cooldown),
                )
                continue
            if was_down:
                registry.mark_up(address)
                logger.info("database alias %s: %s answers again", self.alias, _label(address))
            if address != self._address(targets[0]):
                logger.warning(
                    "database alias %s: failed over to %s (down: %s)",
                    self.alias, _label(address), ", ".join(_label(a) for a in skipped + [f[0] for f in failed]),
                )
            self.connected_address = address
            return connection
        self.connected_address = None
        tried = ", ".join(_label(a) for a, _ in failed) or "none"
        cooling = ", ".join(f"{_label(a)} ({registry.down_for(a):.0f}s left)" for a in skipped) or "none"
        message = f"no database reachable for alias {self.alias}: failed {tried}; cooling down {cooling}"
        logger.error(message)
        raise Database.OperationalError(2003, message) from last_error

    def close_if_unusable_or_obsolete(self):
        # Another thread found this connection's server down: drop the connection now, without the health
        # check's ping (which would wait for the read timeout on a server that stopped answering).
        if (self.connection is not None and self.connected_address is not None and not self.in_atomic_block
                and registry.is_down(self.connected_address)):
            logger.info("database alias %s: %s is marked down, dropping its connection",
                        self.alias, _label(self.connected_address))
            self.drop_failed_connection_quietly()
        super().close_if_unusable_or_obsolete()
        # Back to the preferred address as soon as its cool-down ends.
        if self.connection is not None and self.connected_address is not None:
            preferred = self._address(self._failover_targets()[0])
            if self.connected_address != preferred and not registry.is_down(preferred):
                logger.info("database alias %s: %s is due for a retry", self.alias, _label(preferred))
                self.close()
