"""The running lab, as the benchmark drives it: its hosts, commands in its containers, the load generator."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "lab-"
LOADGEN = Path(__file__).resolve().parent / "loadgen.py"
LOADGEN_IN_CONTAINER = "/var/tmp/django-stack-loadgen.py"
WRITER = Path(__file__).resolve().parent / "writer.py"
WRITER_IN_CONTAINER = "/var/tmp/django-stack-writer.py"
MANAGE = ("cd /srv/shop/current && runuser -u shop -- env STACK_CONFIG=/etc/shop/config.json "
          "venv/bin/python manage.py shell -c {}")


def tool(name: str) -> str:
    """An Ansible command from this interpreter's virtualenv (make's PATH has it; a bare `python -m` may not)."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


class LabError(Exception):
    """The lab is not there or not in the state the benchmark needs."""


class Lab:
    def __init__(self, inventory: Path = ROOT / "inventories" / "lab"):
        out = subprocess.run([tool("ansible-inventory"), "-i", str(inventory), "--list"], check=True,
                             capture_output=True, text=True).stdout
        data = json.loads(out)
        self.groups = {}
        for name, group in data.items():
            if isinstance(group, dict) and "hosts" in group:
                self.groups[name] = group["hosts"]
        # Parent groups (dbservers) list their children's hosts too.
        for name, group in data.items():
            if isinstance(group, dict) and "children" in group and name not in ("all", "lab"):
                hosts = []
                for child in group["children"]:
                    hosts += self.groups.get(child, [])
                self.groups.setdefault(name, hosts)
        for group in ("loadbalancers", "webservers", "db_primary", "db_replicas", "cacheservers", "mediaservers"):
            if not self.groups.get(group):
                raise LabError(f"the lab inventory has no host in {group}")
        self.lb = self.groups["loadbalancers"][0]
        self.web = self.groups["webservers"]
        self.primary = self.groups["db_primary"][0]
        self.replicas = self.groups["db_replicas"]
        self.caches = self.groups["cacheservers"]
        self.media = self.groups["mediaservers"][0]
        self.hosts = sorted({host for hosts in self.groups.values() for host in hosts})

    @staticmethod
    def container(host: str) -> str:
        return PREFIX + host

    def cpu_shares(self) -> dict[str, int]:
        """Each container's CPU weight (docker's cpu_shares; 0 means docker's default, 1024)."""
        out = subprocess.run(["docker", "inspect", "-f", "{{.HostConfig.CpuShares}}",
                              *(self.container(h) for h in self.hosts)], check=True, capture_output=True,
                             text=True).stdout
        return {host: int(shares) or 1024 for host, shares in zip(self.hosts, out.split())}

    def sh(self, host: str, command: str, *, check: bool = True, input: str | None = None,
           timeout: float = 300) -> str:
        result = subprocess.run(["docker", "exec", "-i", self.container(host), "sh", "-c", command], input=input,
                                capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise LabError(f"{host}: {command!r} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
        return result.stdout

    def running(self, host: str) -> bool:
        result = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", self.container(host)],
                                capture_output=True, text=True, check=False)
        return result.stdout.strip() == "true"

    def django(self, code: str, host: str | None = None) -> str:
        """Run Python in the app's Django shell on a web node; returns what it printed last (one line)."""
        out = self.sh(host or self.web[0], MANAGE.format(shlex.quote(code)))
        return out.strip().splitlines()[-1]

    def python(self, host: str, code: str, *, timeout: float = 120) -> str:
        return self.sh(host, "python3 -", input=code, timeout=timeout)

    def install_loadgen(self):
        self.sh(self.lb, f"cat > {LOADGEN_IN_CONTAINER}", input=LOADGEN.read_text())
        self.sh(self.lb, f"cat > {WRITER_IN_CONTAINER}", input=WRITER.read_text())

    def start_load(self, spec: dict, script: str = LOADGEN_IN_CONTAINER) -> Load:
        """Start the load generator (or the order writer) in the load balancer's container; it stops by itself
        after the duration."""
        process = subprocess.Popen(
            ["docker", "exec", "-i", self.container(self.lb), "python3", script],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        process.stdin.write(json.dumps(spec))
        process.stdin.close()
        process.stdin = None  # communicate() must not flush it again
        return Load(process, spec)

    def load(self, spec: dict) -> dict:
        return self.start_load(spec).result()

    def wrk(self, url: str, *, connections: int = 16, duration: float = 4, headers: dict | None = None) -> dict:
        """wrk (Debian's package, C and OpenSSL) from the load balancer's container: for the cases where the Python
        generator's own TLS would be what limits the figure (thousands of small responses a second). Installed
        there on first use; stops by itself after the duration."""
        if not getattr(self, "_wrk_installed", False):
            self.sh(self.lb, "command -v wrk >/dev/null || { apt-get install -y -q --no-install-recommends wrk "
                    "|| { apt-get update -q && apt-get install -y -q --no-install-recommends wrk; }; } >/dev/null",
                    timeout=600)
            self._wrk_installed = True
        args = ["wrk", "--latency", f"-t{min(2, connections)}", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s",
                *[arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")], url]
        out = self.sh(self.lb, f"timeout {duration + 30:g} " + " ".join(shlex.quote(a) for a in args),
                      timeout=duration + 60)
        return parse_wrk(out)

    def memcached_stats(self) -> dict[str, dict[str, int]]:
        code = """
import json, socket
s = socket.create_connection(("127.0.0.1", 11211), timeout=5)
s.sendall(b"stats\\r\\n")
data = b""
while not data.endswith(b"END\\r\\n"):
    data += s.recv(65536)
stats = {}
for line in data.decode().splitlines():
    parts = line.split()
    if len(parts) == 3 and parts[0] == "STAT":
        try:
            stats[parts[1]] = int(parts[2])
        except ValueError:
            pass
print(json.dumps(stats))
"""
        return {host: json.loads(self.python(host, code)) for host in self.caches}

    def memcached_flush(self):
        code = """
import socket
s = socket.create_connection(("127.0.0.1", 11211), timeout=5)
s.sendall(b"flush_all\\r\\n")
assert s.recv(100).startswith(b"OK")
"""
        for host in self.caches:
            self.python(host, code)

    def wait_http(self, host: str, port: int, path: str, *, timeout: float = 90, tls: bool = False):
        """Wait (bounded) until a URL answers 200 from the load balancer's container."""
        code = f"""
import http.client, ssl, sys, time
end = time.monotonic() + {timeout}
while time.monotonic() < end:
    try:
        if {tls!r}:
            c = http.client.HTTPSConnection({host!r}, {port}, timeout=3, context=ssl._create_unverified_context())
        else:
            c = http.client.HTTPConnection({host!r}, {port}, timeout=3)
        c.request("GET", {path!r}, headers={{"Host": "localhost", "X-Forwarded-Proto": "https"}})
        if c.getresponse().status == 200:
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.5)
sys.exit(1)
"""
        self.sh(self.lb, "python3 -", input=code, timeout=timeout + 30)


WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_wrk(out: str) -> dict:
    """wrk --latency's report as the summary() figures: requests, rps, failed, p50/p90/p99 in ms."""
    def latency(p: int) -> float:
        found = re.search(rf"^\s*{p}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
        return float(found.group(1)) * WRK_UNITS[found.group(2)] if found else float("nan")

    total = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m),", out, re.MULTILINE)
    if total is None:
        raise LabError(f"wrk printed no total:\n{out[-2000:]}")
    requests, seconds = int(total.group(1)), float(total.group(2)) * WRK_UNITS[total.group(3)] / 1000
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failed = (sum(int(n) for n in errors.groups()) if errors else 0) + (int(non_2xx.group(1)) if non_2xx else 0)
    return {"requests": requests, "seconds": seconds, "rps": requests / seconds if seconds else 0.0,
            "failed": failed, "p50_ms": latency(50), "p90_ms": latency(90), "p99_ms": latency(99)}


CONTAINERS_CPU = Path("/sys/fs/cgroup/cpuacct/docker/cpuacct.usage")


def containers_cpu_seconds() -> float | None:
    """The CPU time all of the engine's containers have used (cgroup v1's accounting), or None where it cannot be
    read."""
    try:
        return int(CONTAINERS_CPU.read_text()) / 1e9
    except (OSError, ValueError):
        return None


def machine_cpu_seconds() -> float | None:
    """The CPU time this machine's processors have been busy since boot (user, nice, system, interrupts: every
    process, the control node's and the containers'), or None where /proc/stat cannot be read."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def playbook(name: str, path: str, *args: str, profile: bool = False, environment: dict | None = None) -> dict:
    """Time one ansible-playbook run; how many tasks it changed comes from its recap. ``profile``: with the
    task-profile callback (ansible.posix.profile_tasks), whose slowest tasks come back as ``slowest``.
    ``environment``: variables set for this run only. Where it can be read, ``servers_cpu_s`` is the CPU time the
    containers (the servers) used during the run, and ``machine_cpu_s`` the whole machine's (the control node's
    too): divided by the number of CPUs, the shortest the run could take here with every CPU busy all along."""
    print(f"bench: {name}", file=sys.stderr)
    env = dict(os.environ, **(environment or {}))
    if profile:
        enabled = [c for c in env.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",") if c]
        env["ANSIBLE_CALLBACKS_ENABLED"] = ",".join([*enabled, "ansible.posix.profile_tasks"])
        env["PROFILE_TASKS_TASK_OUTPUT_LIMIT"] = "all"
    started, servers_before, machine_before = time.monotonic(), containers_cpu_seconds(), machine_cpu_seconds()
    result = subprocess.run([tool("ansible-playbook"), path, *args], cwd=ROOT, capture_output=True, text=True,
                            check=False, env=env)
    seconds, servers_after, machine_after = time.monotonic() - started, containers_cpu_seconds(), machine_cpu_seconds()
    if result.returncode != 0:
        raise LabError(f"{path} failed:\n{result.stdout[-3000:]}")
    changed = sum(int(n) for n in re.findall(r"changed=(\d+)", result.stdout))
    run = {"name": name, "seconds": seconds, "changed": changed, "changed_tasks": changed_tasks(result.stdout)}
    if servers_before is not None and servers_after is not None:
        run["servers_cpu_s"] = servers_after - servers_before
    if machine_before is not None and machine_after is not None:
        run["machine_cpu_s"] = machine_after - machine_before
    if profile:
        tasks = task_profile(result.stdout)
        run["tasks"] = len(tasks)
        run["slowest"] = tasks[:10]
    return run


PROFILE_LINE = re.compile(r"^(?P<task>.+?) -{2,} (?P<seconds>\d+\.\d+)s$")


def task_profile(output: str) -> list[list]:
    """[task, seconds] of every task, slowest first, from the profile_tasks callback's recap at the end of a run
    (its lines: "role : task name ------ 1.23s")."""
    recap = output[output.rfind("=" * 20):] if "=" * 20 in output else output
    tasks = []
    for line in recap.splitlines():
        found = PROFILE_LINE.match(line.strip())
        if found:
            tasks.append([found.group("task").strip(), float(found.group("seconds"))])
    return sorted(tasks, key=lambda t: -t[1])


def changed_tasks(output: str, limit: int = 20) -> list[str]:
    """"host: role : task" for each task that reported a change, from ansible-playbook's default output."""
    found, task = [], ""
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task = line[len("TASK ["):line.rfind("]")]
        elif line.startswith("RUNNING HANDLER ["):
            task = line[len("RUNNING HANDLER ["):line.rfind("]")]
        else:
            hit = re.match(r"changed: \[([^\]]+)\]", line)
            if hit:
                found.append(f"{hit.group(1)}: {task}")
    return found[:limit]


class Load:
    def __init__(self, process: subprocess.Popen, spec: dict):
        self.process = process
        self.spec = spec
        self.started = time.time()

    def result(self) -> dict:
        deadline = float(self.spec.get("duration", 10)) + float(self.spec.get("timeout", 10)) + 60
        out, err = self.process.communicate(timeout=deadline)
        if self.process.returncode != 0:
            raise LabError(f"the load generator failed: {err.strip()[-2000:]}")
        return json.loads(out)
