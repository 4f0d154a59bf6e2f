"""Start real servers on loopback for a project's tests and benchmark, run a command, stop them.

    python -m django_stack.testing -- pytest -q

Starts a MariaDB primary and a replica of it (GTID replication, read_only replica, as in production), memcached
and nginx with WebDAV for media, each on a free loopback port under one temporary directory. Writes the stack's
configuration file pointing at them (``STACK_CONFIG``; its ``project`` object from ``STACK_TEST_PROJECT``, JSON)
and a state file the tests use to stop and restart a server (``STACK_TEST_STATE``), runs the command, and stops everything however the command ends.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DB_NAME = "app"
APP_USER, APP_PASSWORD = "app", "app-test-password"
REPL_USER, REPL_PASSWORD = "repl", "repl-test-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class Server:
    """A server process started from a fixed command line; ``stop()`` and ``start()`` again at will."""

    def __init__(self, name: str, port: int, argv: list[str], log: Path):
        self.name, self.port, self.argv, self.log = name, port, argv, log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        wait_port(self.port)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def state(self) -> dict:
        return {"name": self.name, "port": self.port, "argv": self.argv, "log": str(self.log),
                "pid": self.process.pid if self.process else None}


def mariadb(name: str, base: Path, server_id: int, *, read_only: bool) -> Server:
    datadir = base / name
    datadir.mkdir()
    subprocess.run(
        ["mariadb-install-db", "--no-defaults", f"--datadir={datadir}", "--user=root",
         "--auth-root-authentication-method=socket", "--skip-test-db"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    port = free_port()
    argv = [
        "mariadbd", "--no-defaults", f"--datadir={datadir}", "--user=root", f"--port={port}",
        "--bind-address=127.0.0.1", f"--socket={datadir}/mysqld.sock", f"--pid-file={datadir}/mysqld.pid",
        f"--log-error={datadir}/error.log", f"--server-id={server_id}", "--log-bin=mariadb-bin",
        "--binlog-format=ROW", "--gtid-strict-mode=1", "--skip-name-resolve", "--character-set-server=utf8mb4",
        "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0",
        "--max-connections=300", "--log-slave-updates=1",
    ]
    if read_only:
        argv.append("--read-only=1")
    return Server(name, port, argv, base / f"{name}.out")


def sql(server: Server, statement: str) -> str:
    socket_path = next(a.split("=", 1)[1] for a in server.argv if a.startswith("--socket="))
    done = subprocess.run(["mariadb", "--no-defaults", "-uroot", f"--socket={socket_path}", "-N", "-B", "-e", statement],
                          check=True, capture_output=True, text=True)
    return done.stdout.strip()


def nginx(base: Path) -> Server:
    root = base / "media"
    root.mkdir()
    (base / "nginx-tmp").mkdir()
    port = free_port()
    conf = base / "nginx.conf"
    conf.write_text(f"""
daemon off;
worker_processes 1;
pid {base}/nginx.pid;
error_log {base}/nginx-error.log warn;
user root;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {base}/nginx-tmp;
    proxy_temp_path {base}/nginx-tmp;
    fastcgi_temp_path {base}/nginx-tmp;
    uwsgi_temp_path {base}/nginx-tmp;
    scgi_temp_path {base}/nginx-tmp;
    server {{
        listen 127.0.0.1:{port};
        location /media/ {{
            alias {root}/;
            client_max_body_size 20m;
            dav_methods PUT DELETE;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }}
    }}
}}
""")
    return Server("media", port, ["nginx", "-c", str(conf), "-p", str(base)], base / "nginx.out")


def memcached(base: Path) -> Server:
    port = free_port()
    # 1 GB: room for the page benchmark's per-user copies (1,000 users), so no strategy is measured on evictions.
    command = ["memcached", "-u", "root", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "1024"]
    return Server("cache", port, command, base / "memcached.out")


def start_all(base: Path) -> dict[str, Server]:
    primary = mariadb("primary", base, 1, read_only=False)
    replica = mariadb("replica", base, 2, read_only=True)
    servers = {"primary": primary, "replica": replica, "cache": memcached(base), "media": nginx(base)}
    for server in servers.values():
        server.start()
    # Accounts are created on the primary and reach the replica through replication, as in production.
    sql(primary, f"""
        CREATE USER '{REPL_USER}'@'127.0.0.1' IDENTIFIED BY '{REPL_PASSWORD}';
        GRANT REPLICATION SLAVE ON *.* TO '{REPL_USER}'@'127.0.0.1';
        CREATE DATABASE {DB_NAME} CHARACTER SET utf8mb4;
        CREATE USER '{APP_USER}'@'127.0.0.1' IDENTIFIED BY '{APP_PASSWORD}';
        GRANT ALL ON {DB_NAME}.* TO '{APP_USER}'@'127.0.0.1';
    """)
    sql(replica, f"""
        CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary.port}, MASTER_USER='{REPL_USER}',
          MASTER_PASSWORD='{REPL_PASSWORD}', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;
        START SLAVE;
    """)
    wait_replicated(primary, replica)
    return servers


def wait_replicated(primary: Server, replica: Server, timeout: int = 30) -> None:
    position = sql(primary, "SELECT @@gtid_binlog_pos")
    result = sql(replica, f"SELECT MASTER_GTID_WAIT('{position}', {timeout})")
    if result != "0":
        raise RuntimeError(f"the replica did not reach {position} in {timeout}s:\n" + sql(replica, "SHOW SLAVE STATUS\\G"))


def project_config(value: str) -> dict:
    """The ``project`` object: JSON, or ``@path`` of a JSON file; empty gives ``{}``."""
    if value.startswith("@"):
        value = Path(value[1:]).read_text()
    return json.loads(value or "{}")


def write_config(base: Path, servers: dict[str, Server]) -> Path:
    config = {
        "secret_key": "test-" + "k" * 30 + "-not-a-secret-" + "z" * 20,
        "debug": False,
        "https": False,
        "allowed_hosts": ["testserver", "localhost", "127.0.0.1"],
        "database": {
            "name": DB_NAME, "user": APP_USER, "password": APP_PASSWORD,
            "primary": {"host": "127.0.0.1", "port": servers["primary"].port},
            "replicas": [{"host": "127.0.0.1", "port": servers["replica"].port}],
            "connect_timeout": 1, "down_cooldown": 5, "read_timeout": 10, "conn_max_age": 60,
        },
        "cache": {"servers": [f"127.0.0.1:{servers['cache'].port}"], "key_prefix": "test"},
        "media": {"url": f"http://127.0.0.1:{servers['media'].port}/media/",
                  "servers": [f"http://127.0.0.1:{servers['media'].port}/media/"]},
        "static_root": str(base / "static"),
        "read_your_writes_seconds": 5,
        "log_level": "INFO",
        "project": project_config(os.environ.get("STACK_TEST_PROJECT", "")),
    }
    path = base / "config.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(__doc__)
        return 2
    base = Path(tempfile.mkdtemp(prefix="stack-test-"))
    servers: dict[str, Server] = {}
    try:
        servers = start_all(base)
        config = write_config(base, servers)
        state = base / "state.json"
        state.write_text(json.dumps({"base": str(base), "servers": {n: s.state() for n, s in servers.items()}}))
        env = {**os.environ, "STACK_CONFIG": str(config), "STACK_TEST_STATE": str(state)}
        command = subprocess.Popen(argv, env=env)
        try:
            return command.wait()
        except KeyboardInterrupt:
            command.send_signal(signal.SIGINT)
            return command.wait()
    finally:
        for server in servers.values():
            server.stop()
        # Servers the tests restarted run under other pids, recorded in the state file.
        try:
            restarted = json.loads((base / "state.json").read_text())["servers"].values()
        except (OSError, ValueError):
            restarted = []
        for entry in restarted:
            try:
                os.kill(entry["pid"], signal.SIGTERM)
            except (OSError, TypeError):
                pass
        if os.environ.get("STACK_TEST_KEEP") != "1":
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; an exited process that its parent has not reaped yet (a zombie) is not alive."""
    try:
        os.waitpid(pid, os.WNOHANG)  # reaps it if it is our own child
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Handle:
    """A server of a running bench, seen from the tests (another process than the one that started it)."""

    def __init__(self, state_path: str | os.PathLike, name: str):
        self.state_path = Path(state_path)
        self.name = name

    def _state(self) -> dict:
        return json.loads(self.state_path.read_text())

    @property
    def port(self) -> int:
        return self._state()["servers"][self.name]["port"]

    def stop(self, timeout: float = 30) -> None:
        pid = self._state()["servers"][self.name]["pid"]
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"{self.name} (pid {pid}) did not stop in {timeout}s")

    def start(self) -> None:
        state = self._state()
        entry = state["servers"][self.name]
        with open(entry["log"], "ab") as log:
            process = subprocess.Popen(entry["argv"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        entry["pid"] = process.pid
        self.state_path.write_text(json.dumps(state))
        wait_port(entry["port"])

    def sql(self, statement: str) -> str:
        """Run ``statement`` as root on this MariaDB server (through its socket); return what it printed."""
        entry = self._state()["servers"][self.name]
        return sql(Server(self.name, entry["port"], entry["argv"], Path(entry["log"])), statement)
