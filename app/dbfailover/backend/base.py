"""Django's MySQL backend, plus failover at connection time.

``get_new_connection`` walks the alias's ``FAILOVER`` addresses in order. Each address is complete (host, port,
user, password), so a replica on another port or with its own credentials is really tried, not the dead host
again. An address that fails with a connection error is marked down for ``FAILOVER_COOLDOWN`` seconds and
skipped at once by every later connection of the process until the cool-down ends. When the connection had to
use a fallback, it is closed at the end of a request once the preferred address's cool-down is over, so traffic
returns to it.

Beyond connecting: a server can also stop answering on a connection that is already open (a network partition,
a frozen host): nothing is refused, reads just hang. Replicas therefore get a short read timeout
(``replica_read_timeout``), and a read on a replica alias that fails with a connection error outside a
transaction marks that server down and is sent again on a new connection, which fails over. Other threads of the
process then drop their open connections to that server at their next request instead of each waiting for the
read timeout.
"""

from __future__ import annotations

import logging

from django.db.backends import utils as backend_utils
from django.db.backends.mysql import base as mysql_base

from dbfailover import registry

Database = mysql_base.Database
logger = logging.getLogger("shop.db.failover")

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


def _label(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


class _RetryReadsOnReplica:
    """A cursor wrapper that sends a read again, on a new connection, when a replica stopped answering."""

    def _retrying(self, method, sql, params):
        try:
            return method(sql, params)
        except Exception as exc:  # Django's OperationalError, or InterfaceError on a closed connection
            if not self.db.can_retry_read(exc):
                raise
            self.db.drop_failed_connection(exc)
            self.db.ensure_connection()
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

    def drop_failed_connection(self, exc: BaseException) -> None:
        """Mark the server of this connection down and close the connection (without waiting on it)."""
        address = self.connected_address
        if address is not None:
            cooldown = float(self.settings_dict.get("FAILOVER_COOLDOWN", 30))
            registry.mark_down(address, cooldown)
            logger.warning("database alias %s: %s stopped answering (%s), marked down for %ss",
                           self.alias, _label(address), exc, int(cooldown))
        try:
            self.close()
        except Exception:  # noqa: BLE001 - closing a dead connection may fail; it is gone either way
            self.connection = None
        self.connected_address = None

    def is_usable(self):
        try:
            self.connection.ping()
        except Database.Error as exc:
            if is_connection_error(exc) and self.connected_address is not None:
                registry.mark_down(self.connected_address, float(self.settings_dict.get("FAILOVER_COOLDOWN", 30)))
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
        except Exception:  # noqa: BLE001 - see drop_failed_connection
            self.connection = None
        self.connected_address = None

    def get_new_connection(self, conn_params):
        cooldown = float(self.settings_dict.get("FAILOVER_COOLDOWN", 30))
        targets = self._failover_targets()
        skipped, failed = [], []
        last_error = None
        for target in targets:
            address = self._address(target)
            if registry.is_down(address):
                skipped.append(address)
                continue
            params = dict(conn_params)
            params.pop("unix_socket", None)
            params.update(host=target["HOST"], port=address[1], user=target["USER"], password=target["PASSWORD"])
            try:
                connection = super().get_new_connection(params)
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
