"""What `make bench` measures. Each function runs one part against the lab and returns plain data for the report.

All load comes from the load generator in the load balancer's container and goes to 127.0.0.1 there or to the
lab's own containers; every load has a duration and stops by itself, and every fault is healed by the same
function that caused it (also when the run is interrupted).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import yaml

from .lab import MANAGE, ROOT, WRITER_IN_CONTAINER, Lab, LabError, playbook, tool
from .stats import (haproxy_abnormal, logged_failures, ok, rolling_p50, slow_requests, summary, time_to_recover,
                    write_outage)

HOST = "localhost"
STRATEGIES = {
    "uncached": "/bench/uncached/",
    "two-pass": "/bench/two-pass/",
    "per-user": "/bench/per-user/",
    "whole-page": "/bench/whole-page/",
}
# The strategies' page: the smallest of these product counts whose uncached page costs at least this long (p50,
# one connection, through the whole stack) on the machine the benchmark runs on.
PAGE_SIZES = (96, 192, 384, 768)
CALIBRATION_MS = 50.0

SETUP = """
import json, secrets
from importlib import import_module
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from catalog.models import Category, Product
User = get_user_model()
N = %(users)d
# Users without a usable password (nobody logs in as them) and a session each, made here instead of through
# the login form: a thousand password hashes would cost minutes of CPU and measure nothing of interest.
User.objects.bulk_create([User(username=f"bench{i:05d}", password="!") for i in range(N)], ignore_conflicts=True)
users = list(User.objects.using("default").filter(username__startswith="bench").order_by("username")[:N])
engine = import_module(settings.SESSION_ENGINE)
cookies = []
for user in users:
    session = engine.SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    cookies.append(f"{settings.SESSION_COOKIE_NAME}={session.session_key}; "
                   f"{settings.CSRF_COOKIE_NAME}={secrets.token_hex(16)}")
products = [p.get_absolute_url() for p in Product.objects.using("default").order_by("pk")[:%(products)d]]
categories = [c.get_absolute_url() for c in Category.objects.using("default").order_by("pk")]
print(json.dumps({"cookies": cookies, "products": products, "categories": categories}))
"""


# A host's packets to a port dropped, from inside its own container (undone by deleting the table).
_BLACKHOLE = ("nft add table inet benchfault && nft 'add chain inet benchfault input "
              "{{ type filter hook input priority -10 ; }}' && nft add rule inet benchfault input tcp dport {port} drop")
BLACKHOLE_DB = _BLACKHOLE.format(port=3306)
BLACKHOLE_CACHE = _BLACKHOLE.format(port=11211)

# Django code run on a web node for the cache blip: products whose cached entry lives on a given memcached node,
# their page URLs, and a price change of each (through the model's save: the app's own invalidation path).
CACHED_ON = """
import json, memcache
from django.core.cache import caches
from catalog import datacache
from catalog.models import Product
backend = caches["default"]
client = backend._cache
found = []
for pk in Product.objects.order_by("id").values_list("id", flat=True)[:2000]:
    key = backend.make_and_validate_key(datacache.product_key(pk)).encode()
    if memcache.serverHashFunction(key) % len(client.buckets) == {node_index}:
        found.append(pk)
    if len(found) == {count}:
        break
print(json.dumps(found))
"""
URLS_OF = """
import json
from catalog.models import Product
print(json.dumps({{p.pk: p.get_absolute_url() for p in Product.objects.filter(pk__in={ids})}}))
"""
CHANGE_PRICES = """
import json
from decimal import Decimal
from catalog.models import Product
new = {{}}
for product in Product.objects.using("default").filter(pk__in={ids}):
    product.price = product.price + Decimal("1.00")
    product.save()
    new[product.pk] = str(product.price)
print(json.dumps(new))
"""
# Run in the load balancer's container: each product page through HAProxy; what it shows of each price.
PRICES_SEEN = """
import json, re, ssl, urllib.request
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
seen = {{}}
for pk, path in {urls}.items():
    req = urllib.request.Request("https://127.0.0.1" + path, headers={{"Host": "localhost"}})
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        found = re.search(r'<p class="price">([0-9.]+) ', r.read().decode(errors="replace"))
        seen[pk] = found.group(1) if found else ""
print(json.dumps(seen))
"""

# Steady load of the fault scenarios: this share of the mixed pages' flat-out throughput, at most this rate.
FAULT_LOAD_SHARE = 0.3
MAX_FAULT_RATE = 40


def burn_cpus(processes: int, seconds: float) -> None:
    """Keep `processes` CPUs busy for `seconds` on this machine (plain Python loops that stop by themselves)."""
    loop = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"
    burners = [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(processes)]
    for burner in burners:
        burner.wait(timeout=seconds + 30)


def ansible_pings(seconds: float) -> int:
    """Ansible alone, nothing to change: `ansible all -m ansible.builtin.ping` over and over for `seconds` (each
    run one task on every host at once, as in the common play of site.yml). Returns how many runs finished."""
    runs, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        subprocess.run([tool("ansible"), "all", "-m", "ansible.builtin.ping", "-o"], cwd=ROOT, capture_output=True,
                       check=True, timeout=120)
        runs += 1
    return runs


class RunQueue:
    """Samples how many processes are runnable on this machine (the 4th field of /proc/loadavg, containers
    included: they share the kernel), every quarter second, until stopped."""

    def __init__(self, started: float):
        self.started = started
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.25):
            running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
            self.samples.append((time.time() - self.started, running - 1))  # less this reader itself

    def median(self, start: float, end: float) -> float:
        chosen = sorted(n for t, n in self.samples if start <= t < end)
        return float(chosen[len(chosen) // 2]) if chosen else 0.0

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)


class Bench:
    def __init__(self, lab: Lab, *, users: int = 1000, quick: bool = False):
        self.lab = lab
        self.users = users
        # --quick: shorter loads, for trying the harness out; the report says so.
        self.scale = 0.4 if quick else 1.0
        self.web = lab.web[0]

    def seconds(self, value: float) -> float:
        return max(2.0, value * self.scale)

    # Targets, as seen from the load balancer's container.
    def via_lb(self, path: str, **extra) -> dict:
        return {"host": "127.0.0.1", "port": 443, "tls": True, "path": path, **extra}

    def direct(self, host: str, path: str, port: int = 8000, **extra) -> dict:
        # HAProxy adds X-Forwarded-Proto; straight to a web node the benchmark adds it, as HAProxy would.
        return {"host": host, "port": port, "tls": False, "path": path,
                "headers": {"X-Forwarded-Proto": "https"}, **extra}

    def spec(self, targets, *, users=None, connections=8, duration=5.0, rate=0, **extra) -> dict:
        return {"targets": targets, "users": users or [""], "connections": connections, "duration": duration,
                "rate": rate, "host_header": HOST, "timeout": 10, **extra}

    # --- set-up ---------------------------------------------------------------------------------------------
    def setup(self) -> dict:
        for host in [self.lab.lb, *self.lab.web, *self.lab.caches, self.lab.primary, *self.lab.replicas]:
            if not self.lab.running(host):
                raise LabError(f"{Lab.container(host)} is not running: start the lab with `make lab`")
        self.lab.install_loadgen()
        probe = self.lab.load(self.spec([self.via_lb("/bench/slow/?ms=0")], connections=1, duration=2, requests=1))
        status = probe["records"][0][2] if probe["records"] else 0
        if status != 200:
            raise LabError(f"/bench/slow/ answered {status} through the load balancer: the benchmark's pages are "
                           "off (django_web_project_settings.bench_urls: true in the lab's group_vars, then `make lab`)")
        data = json.loads(self.lab.django(SETUP % {"users": self.users, "products": 2000}))
        self.cookies = data["cookies"]
        self.products = data["products"]
        self.categories = data["categories"]
        uwsgi = self.lab.sh(self.web, "cat /etc/shop/uwsgi.ini")
        self.processes = int(re.search(r"^processes\s*=\s*(\d+)", uwsgi, re.MULTILINE).group(1))
        self.threads = int(re.search(r"^threads\s*=\s*(\d+)", uwsgi, re.MULTILINE).group(1))
        # The fault scenarios' steady load: a fixed share of what the stack serves flat out on this machine, so
        # that a fault shows as failures and latency, not as a queue that was there before it.
        users = self.mixed_users()
        flat_out = summary(self.lab.load(self.spec(self.mixed_targets(), users=users, connections=8,
                                                   duration=self.seconds(6), timeout=15))["records"], 1.0)
        self.rate = max(5, min(MAX_FAULT_RATE, round(flat_out["rps"] * FAULT_LOAD_SHARE)))
        manifest = json.loads(self.lab.sh(self.web, "cat /srv/shop/current/static/staticfiles.json"))
        self.static_small = "/static/" + manifest["paths"]["shop/site.css"]
        self.static_large = "/static/" + manifest["paths"]["admin/css/base.css"]
        return {
            "users": len(self.cookies),
            "uwsgi_processes": self.processes,
            "uwsgi_threads": self.threads,
            "release": self.lab.sh(self.web, "readlink /srv/shop/current").strip().rsplit("/", 1)[-1],
            "nodes_debian": self.lab.sh(self.web, "cat /etc/debian_version").strip(),
            "web_nodes": len(self.lab.web),
            "replicas": len(self.lab.replicas),
            "cache_nodes": len(self.lab.caches),
            "mixed_flat_out_rps": flat_out["rps"],
            "fault_rate": self.rate,
            "cpu_shares": self.lab.cpu_shares(),
        }

    # --- the load generator's own ceiling ----------------------------------------------------------------------
    def ceiling(self) -> dict:
        # A response HAProxy makes itself (the redirect to HTTPS): no TLS, no backend. What the generator reaches
        # here bounds every other figure of this run.
        plain = self.lab.load(self.spec([{"host": "127.0.0.1", "port": 80, "tls": False, "path": "/"}],
                                        connections=16, duration=self.seconds(5)))
        return summary(plain["records"])

    # --- page strategies ----------------------------------------------------------------------------------------
    def page_size(self) -> tuple[int, list[dict]]:
        """The smallest of PAGE_SIZES whose uncached page costs at least CALIBRATION_MS at p50 here (or the
        largest), with what each size tried cost."""
        tried = []
        for size in PAGE_SIZES:
            result = self.lab.load(self.spec([self.via_lb(f"/bench/{size}/uncached/")], users=self.cookies,
                                             connections=1, duration=self.seconds(6), requests=15))
            figures = summary(result["records"])
            tried.append({"size": size, "p50_ms": figures["p50_ms"], "failed": figures["failed"]})
            if figures["p50_ms"] >= CALIBRATION_MS:
                break
        return size, tried

    def strategies(self, rounds: int = 3) -> dict:
        logged_in = self.cookies
        size, calibration = self.page_size()
        sized = {name: path.replace("/bench/", f"/bench/{size}/", 1) for name, path in STRATEGIES.items()}
        rows = {name: [] for name in [*STRATEGIES, "two-pass (anonymous)"]}
        # Warm every strategy's cache, then interleave short runs so drift hits all of them alike.
        for name, path in sized.items():
            self.lab.load(self.spec([self.via_lb(path)], users=logged_in if name != "whole-page" else None,
                                    connections=8, duration=self.seconds(3)))
        for _ in range(rounds):
            for name in rows:
                path = sized.get(name, sized["two-pass"])
                users = logged_in if name in ("uncached", "two-pass", "per-user") else None
                result = self.lab.load(self.spec([self.via_lb(path)], users=users, connections=8,
                                                 duration=self.seconds(4)))
                rows[name].extend(result["records"])
        figures = {name: summary(records) for name, records in rows.items()}
        # Throughput over the rounds is requests / time under load.
        for name, records in rows.items():
            figures[name]["rps"] = len(records) / (rounds * self.seconds(4))

        # Cache memory after every user fetched the page once, from an empty cache: the shop's own page size
        # (a per-user copy of the calibrated page for each of the users would not fit the lab's memcached).
        memory = {}
        for name, path in STRATEGIES.items():
            self.lab.memcached_flush()
            time.sleep(1.1)  # flush_all marks items older than "now" (one-second resolution).
            users = logged_in if name != "whole-page" else [""] * len(logged_in)
            self.lab.load(self.spec([self.via_lb(path)], users=users, connections=8, duration=120,
                                    requests=len(users)))
            memory[name] = sum(s["bytes"] for s in self.lab.memcached_stats().values())
        baseline = memory["uncached"]
        for name in STRATEGIES:
            figures[name]["cache_bytes"] = memory[name]
            figures[name]["cache_bytes_over_baseline"] = memory[name] - baseline
        figures["page"] = {"products": size, "calibration": calibration, "calibration_ms": CALIBRATION_MS}
        return figures

    # --- compressed pages -----------------------------------------------------------------------------------------
    def compression(self, rounds: int = 4) -> dict:
        """The catalog's home page for logged-in users through HAProxy, asking for gzip and not, interleaved: bytes
        on the wire; throughput flat out (4 connections, closed loop); latency at the same steady rate for both,
        40% of the uncompressed page's flat-out throughput (open loop: latency measured where the stack is not
        saturated; flat out, p50 is a queue that only shows throughput again)."""
        cases = {"gzip": self.via_lb("/", headers={"Accept-Encoding": "gzip"}), "uncompressed": self.via_lb("/")}
        flat = {name: [] for name in cases}
        steady = {name: [] for name in cases}
        for target in cases.values():
            self.lab.load(self.spec([target], users=self.cookies, connections=4, duration=self.seconds(2)))
        for _ in range(rounds):
            for name, target in cases.items():
                flat[name].extend(self.lab.load(self.spec([target], users=self.cookies, connections=4,
                                                          duration=self.seconds(4)))["records"])
        flat_rps = {name: len(records) / (rounds * self.seconds(4)) for name, records in flat.items()}
        rate = max(5, round(flat_rps["uncompressed"] * 0.4))
        for _ in range(rounds):
            for name, target in cases.items():
                steady[name].extend(self.lab.load(self.spec([target], users=self.cookies, connections=16, rate=rate,
                                                            duration=self.seconds(4)))["records"])
        figures = {}
        for name in cases:
            figures[name] = summary(steady[name])
            figures[name]["rps"] = flat_rps[name]
            figures[name]["steady_rate"] = rate
            figures[name]["bytes_p50"] = summary(flat[name])["bytes_p50"]
        return figures

    # --- static files -------------------------------------------------------------------------------------------
    def static(self, rounds: int = 3) -> dict:
        media = self.lab.media
        # The same file on the media server's nginx (a node of the same kind), beside the web node's copy.
        for path in (self.static_small, self.static_large):
            content = subprocess.run(["docker", "exec", Lab.container(self.web), "cat", "/srv/shop/current" + path],
                                     check=True, capture_output=True).stdout
            target = "/srv/media/bench-static" + path
            subprocess.run(["docker", "exec", "-i", Lab.container(media), "sh", "-c",
                            f"mkdir -p $(dirname {target}) && cat > {target} && chmod 644 {target}"],
                           input=content, check=True, capture_output=True)
        media_ip = self.lab.sh(self.lab.lb, f"getent hosts {media}").split()[0]
        # HAProxy and nginx with wrk (C, OpenSSL): at these rates the Python generator's own TLS would be what limits
        # the HAProxy figures. uWSGI with the Python generator: its http-socket closes the connection after each
        # response, which wrk counts as errors.
        cases = {
            "small, uWSGI offload": self.direct(self.web, self.static_small),
            "small, through HAProxy (TLS, its cache)": f"https://127.0.0.1{self.static_small}",
            "small, nginx": f"http://{media_ip}/media/bench-static{self.static_small}",
            "large, uWSGI offload": self.direct(self.web, self.static_large),
            "large, through HAProxy (TLS, its cache)": f"https://127.0.0.1{self.static_large}",
            "large, nginx": f"http://{media_ip}/media/bench-static{self.static_large}",
        }
        headers = {"Host": HOST, "X-Forwarded-Proto": "https"}

        def measure(target, connections, duration):
            if isinstance(target, str):
                return self.lab.wrk(target, connections=connections, duration=duration, headers=headers)
            records = self.lab.load(self.spec([target], connections=connections, duration=duration))["records"]
            return {**summary(records), "requests": len(records), "seconds": duration}

        for target in cases.values():  # HAProxy's cache holds both files before the first round
            measure(target, 1, 1)
        runs = {name: [] for name in cases}
        for _ in range(rounds):
            for name, target in cases.items():
                runs[name].append(measure(target, 16, self.seconds(4)))
        figures = {}
        for name, done in runs.items():
            seconds = sum(r["seconds"] for r in done)
            figures[name] = {
                "requests": sum(r["requests"] for r in done), "failed": sum(r["failed"] for r in done),
                "rps": sum(r["requests"] for r in done) / seconds if seconds else 0.0,
                "generator": "wrk" if isinstance(cases[name], str) else "bench/loadgen.py",
                # The rounds' medians of the percentiles (wrk gives percentiles, not the requests).
                **{key: sorted(r[key] for r in done)[len(done) // 2] for key in ("p50_ms", "p90_ms", "p99_ms")},
            }
        sizes = {"small": len(self.lab.sh(self.web, f"cat /srv/shop/current{self.static_small}")),
                 "large": len(self.lab.sh(self.web, f"cat /srv/shop/current{self.static_large}"))}

        # Every worker thread of every web node busy with a slow request. Straight to a node, a static file waits
        # for a worker like a page does (uWSGI reads every request in a worker thread; offloading frees the worker
        # from sending the file, not from taking the request); through HAProxy it comes from HAProxy's cache.
        busy = {"slots": self.processes * self.threads, "nodes": len(self.lab.web)}
        probes = [self.direct(self.web, self.static_small), self.direct(self.web, "/"), self.via_lb(self.static_small)]
        self.lab.load(self.spec([probes[2]], connections=1, duration=2, requests=2))  # fill HAProxy's cache
        idle = self.lab.load(self.spec(probes, connections=6, duration=self.seconds(5)))
        slow = [self.lab.start_load(self.spec([self.direct(web, "/bench/slow/?ms=4000")], connections=busy["slots"],
                                              duration=self.seconds(10), timeout=20))
                for web in self.lab.web]
        time.sleep(2)
        during = self.lab.load(self.spec(probes, connections=6, duration=self.seconds(5)))
        slow_records = [record for load in slow for record in load.result()["records"]]
        busy["slow_requests"] = summary(slow_records)
        for index, name in enumerate(("static_direct", "page_direct", "static_lb")):
            busy[f"{name}_idle"] = summary(idle["records"], target=index)
            busy[f"{name}_busy"] = summary(during["records"], target=index)
        self.lab.sh(media, "rm -rf /srv/media/bench-static")
        return {"cases": figures, "sizes": sizes, "busy": busy}

    # --- load balancer overhead ---------------------------------------------------------------------------------
    def lb_overhead(self, rounds: int = 3) -> dict:
        path = self.categories[1]
        cases = {"through HAProxy (TLS)": self.via_lb(path), "straight to one web node": self.direct(self.web, path)}
        rows = {name: [] for name in cases}
        for _ in range(rounds):
            for name, target in cases.items():
                rows[name].extend(self.lab.load(self.spec([target], users=self.cookies, connections=4,
                                                          duration=self.seconds(4)))["records"])
        figures = {name: summary(records) for name, records in rows.items()}
        for name, records in rows.items():
            figures[name]["rps"] = len(records) / (rounds * self.seconds(4))
        return figures

    # --- the cost of monitoring -----------------------------------------------------------------------------------
    def monitoring_units(self) -> dict[str, list[str]]:
        """Every process that monitoring adds, per host: exporters, probes, the journal's upload and receipt, and
        Prometheus with its companions on the monitoring host."""
        groups = self.lab.groups
        units = {}
        for host in self.lab.hosts:
            mine = ["prometheus-node-exporter", "systemd-journal-upload"]
            if host in groups.get("webservers", []) or host in groups.get("cacheservers", []):
                mine.append("stack-metrics-probe")
            if host in groups.get("dbservers", []):
                mine.append("prometheus-mysqld-exporter")
            if host in groups.get("loadbalancers", []):
                mine.append("stack-haproxy-mtail")
            if host in groups.get("mediaservers", []):
                mine.append("prometheus-nginx-exporter")
            if host in groups.get("monitoring", []):
                mine += ["prometheus", "prometheus-alertmanager", "prometheus-blackbox-exporter", "stack-alert-log",
                         "systemd-journal-remote.socket", "systemd-journal-remote"]
            units[host] = mine
        return units

    def set_monitoring(self, on: bool) -> None:
        verb = "start" if on else "stop"
        for host, units in self.monitoring_units().items():
            # Only the units the host has (systemd-journal-upload is not on the monitoring host itself).
            self.lab.sh(host, "for u in " + " ".join(units) + "; do systemctl cat \"$u\" >/dev/null 2>&1 && "
                        f"systemctl {verb} \"$u\"; done; true")

    def monitoring_settled(self, timeout: float = 90) -> float:
        """After monitoring starts again: wait until Prometheus answers ready and every host's journal uploader has
        sent what was logged while it was stopped (its saved cursor at the journal's end, give or take a few
        lines). Until then, the first seconds after a start (Prometheus replaying its log, every uploader's
        backlog) would be counted as what monitoring costs all the time. Returns the seconds it took."""
        started = time.monotonic()
        monitoring = self.lab.groups["monitoring"][0]
        uploaders = [h for h, units in self.monitoring_units().items() if "systemd-journal-upload" in units
                     and h != monitoring]
        backlog = ('s=/var/lib/systemd/journal-upload/state; [ -f "$s" ] || { echo 0; exit; }; '
                   'c=$(sed -n "s/^LAST_CURSOR=//p" "$s"); '
                   'journalctl --after-cursor="$c" -q --no-pager -o cat 2>/dev/null | wc -l')
        ready = ("python3 -c \"import sys, urllib.request; "
                 "urllib.request.urlopen('http://' + sys.argv[1] + ':9090/-/ready', timeout=3)\" "
                 "$(hostname -I | cut -d' ' -f1) >/dev/null 2>&1 && echo yes || echo no")
        while time.monotonic() - started < timeout:
            if (self.lab.sh(monitoring, ready).strip() == "yes"
                    and all(int(self.lab.sh(h, backlog).strip() or 0) <= 20 for h in uploaders)):
                break
            time.sleep(1)
        else:
            raise LabError(f"monitoring did not settle within {timeout:g} s of its start")
        return time.monotonic() - started

    def monitoring(self, rounds: int = 6) -> dict:
        """The same page with every monitoring process running and with all of them stopped, interleaved: flat out
        (4 connections, closed loop: what monitoring takes of the throughput) and at the same steady rate, 40% of
        the flat-out throughput without monitoring (open loop: the latency a user sees at a normal load).
        Monitoring's steady state is what it costs: each start is waited out (monitoring_settled), and the rounds
        go on, off, off, on, on, ... so that half the runs of each case come straight after one of the same."""
        if not self.lab.groups.get("monitoring"):
            return {"skipped": "the lab inventory has no monitoring host"}
        target = self.via_lb(self.categories[1])
        flat = {"monitoring on": [], "monitoring off": []}
        steady = {"monitoring on": [], "monitoring off": []}
        settle = []
        state = {"on": None}

        def switch(on: bool):
            if state["on"] is on:
                return
            self.set_monitoring(on)
            if on:
                settle.append(self.monitoring_settled())
            time.sleep(3)
            state["on"] = on

        def order(index: int) -> list[str]:
            names = list(flat)
            return names if index % 2 == 0 else names[::-1]

        try:
            for index in range(rounds):
                for name in order(index):
                    switch(name == "monitoring on")
                    flat[name].extend(self.lab.load(self.spec([target], users=self.cookies, connections=4,
                                                              duration=self.seconds(5)))["records"])
            rate = max(5, round(len(flat["monitoring off"]) / (rounds * self.seconds(5)) * 0.4))
            for index in range(rounds):
                for name in order(index):
                    switch(name == "monitoring on")
                    steady[name].extend(self.lab.load(self.spec([target], users=self.cookies, connections=16,
                                                                rate=rate, duration=self.seconds(5)))["records"])
        finally:
            if state["on"] is not True:
                self.set_monitoring(True)
        figures = {}
        for name in flat:
            figures[name] = summary(steady[name])
            figures[name]["rps"] = len(flat[name]) / (rounds * self.seconds(5))
            figures[name]["flat_out_p50_ms"] = summary(flat[name])["p50_ms"]
            figures[name]["steady_rate"] = rate
        on, off = figures["monitoring on"], figures["monitoring off"]
        figures["p50_ratio"] = on["p50_ms"] / off["p50_ms"] if off["p50_ms"] else 0.0
        figures["units"] = sorted({u for units in self.monitoring_units().values() for u in units})
        figures["settle_s"] = max(settle) if settle else 0.0
        figures["rounds"] = rounds
        return figures

    # --- fault injection ----------------------------------------------------------------------------------------
    def mixed_users(self) -> list[str]:
        """The fault runs' users: 200 of them, every other one anonymous (no cookie)."""
        return [c if i % 2 else "" for i, c in enumerate(self.cookies[:200])]

    def mixed_targets(self) -> list[dict]:
        """The fault runs' traffic: cached pages, product pages and the uncached page (which always reads a
        replica), from logged-in and anonymous users alike."""
        targets = []
        for path in self.categories[:20]:
            targets.append(self.via_lb(path, weight=2))
        for path in self.products[:400]:
            targets.append(self.via_lb(path, weight=0.1))
        targets.append(self.via_lb(STRATEGIES["uncached"], weight=8))
        return targets

    def fault(self, name: str, inject, heal, *, before=10.0, during=10.0, after=12.0) -> dict:
        users = self.mixed_users()
        duration = before + during + after
        load = self.lab.start_load(self.spec(self.mixed_targets(), users=users, connections=32,
                                             duration=duration, rate=self.rate, timeout=15))
        started = time.monotonic()
        time.sleep(before)
        inject_at = time.monotonic() - started
        try:
            inject()
            time.sleep(max(0.0, before + during - (time.monotonic() - started)))
        finally:
            heal_at = time.monotonic() - started
            heal()
        result = load.result()
        records = result["records"]
        # Clocks: the generator's t=0 is a little after `started` (docker exec); align on the process start.
        offset = result["started"] - load.started
        inject_at -= offset
        heal_at -= offset
        base = summary(records, 2.0, inject_at)
        return {
            "name": name,
            "inject_at": inject_at,
            "heal_at": heal_at,
            "before": base,
            "during": summary(records, inject_at, heal_at),
            "after": summary(records, heal_at + 2.0),
            "all": summary(records),
            "recover_s": time_to_recover(records, inject_at, base["p50_ms"]),
            "series": [[r[0], r[1], r[2]] for r in records],
            "rolling_p50": rolling_p50(records),
        }

    def systemctl(self, host: str, action: str, unit: str):
        return lambda: self.lab.sh(host, f"systemctl {action} {unit}")

    def faults(self) -> list[dict]:
        replica = self.lab.replicas[0]
        web = self.lab.web[-1]
        cache = self.lab.caches[0]
        results = []
        results.append(self.fault(f"replica {replica} stopped", self.systemctl(replica, "stop", "mariadb"),
                                  self.systemctl(replica, "start", "mariadb")))
        self.settle()
        results.append(self.fault(
            f"replica {replica} blackholed (its packets dropped)",
            lambda: self.lab.sh(replica, BLACKHOLE_DB),
            lambda: self.lab.sh(replica, "nft delete table inet benchfault", check=False)))
        self.settle()
        results.append(self.fault(
            f"web node {web} killed",
            lambda: subprocess.run(["docker", "kill", Lab.container(web)], check=True, capture_output=True),
            lambda: self.restart_web(web)))
        self.settle()
        results.append(self.fault(f"memcached on {cache} stopped", self.systemctl(cache, "stop", "memcached"),
                                  self.systemctl(cache, "start", "memcached")))
        self.settle()
        return results

    # --- routine events (issue 15): a primary restart, a blackholed replica flat out, a memcached blip ---------
    def routine(self) -> dict:
        return {"primary_restart": self.primary_restart(), "replica_blackhole_throughput": self.blackhole_throughput(),
                "cache_blip": self.cache_blip()}

    def writers(self, first: int, count: int) -> list[list[str]]:
        return [[c, c.rsplit("=", 1)[1]] for c in self.cookies[first:first + count]]

    def primary_restart(self) -> dict:
        """`systemctl restart mariadb` on the primary under reads and a stream of writes (cart adds and orders):
        how long after the primary answered again writes kept failing (target: under 1 s)."""
        primary = self.lab.primary
        stop_file = "/var/tmp/django-stack-bench-restart-stop"
        self.lab.sh(self.lab.lb, f"rm -f {stop_file}")
        product_ids = [int(path.strip("/").split("/")[1]) for path in self.products[:100]]
        limit = 90
        load = self.lab.start_load(self.spec(self.mixed_targets(), users=self.mixed_users(), connections=32,
                                             duration=limit, rate=self.rate, timeout=15, stop_file=stop_file))
        orders = self.lab.start_load({"users": self.writers(260, 4), "products": product_ids, "interval": 0.05,
                                      "duration": limit, "stop_file": stop_file}, script=WRITER_IN_CONTAINER)
        try:
            time.sleep(10)
            restarted_wall = time.time()
            self.lab.sh(primary, "systemctl restart mariadb")
            time.sleep(15)
        finally:
            self.lab.sh(self.lab.lb, f"touch {stop_file}")
        reads, writes = load.result(), orders.result()
        # When MariaDB answered again: its "ready for connections" line, on the wall clock every container shares.
        journal = self.lab.sh(primary, f"journalctl -u mariadb -o short-unix --since @{int(restarted_wall) - 1} "
                              "--no-pager", check=False)
        ready = [float(line.split()[0]) for line in journal.splitlines() if "ready for connections" in line]
        writable = [float(line.split()[0]) for line in journal.splitlines() if "accepting writes" in line]
        answered_wall = ready[-1] if ready else None
        records = [[r[0] + writes["started"] - restarted_wall, r[1], r[2], r[5]] for r in writes["records"]]
        answered = None if answered_wall is None else answered_wall - restarted_wall
        failed_after = [r for r in records if answered is not None and r[0] >= answered and not ok(r[2])]
        return {
            "primary": primary,
            "answered_s": answered,
            "writable_s": None if not writable else writable[-1] - restarted_wall,
            "writes": len(records),
            "failed_writes": sum(1 for r in records if not ok(r[2])),
            "failed_writes_after_answering": len(failed_after),
            "failed_seconds_after_answering": (max(r[0] for r in failed_after) - answered) if failed_after else 0.0,
            "write_statuses": dict(Counter(f"{r[1]} {r[2]}" for r in records)),
            "reads": summary(reads["records"]),
            "write_series": [[r[0], r[1], r[2]] for r in records],
        }

    def blackhole_throughput(self) -> dict:
        """The uncached page (every request reads a replica) flat out, 8 connections, before and while one
        replica's packets are dropped: the share of throughput kept (target: at least 70%)."""
        replica = self.lab.replicas[0]
        target = [self.via_lb(STRATEGIES["uncached"])]
        users = self.mixed_users()
        window = self.seconds(15)
        before = summary(self.lab.load(self.spec(target, users=users, connections=8, duration=window))["records"])
        self.lab.sh(replica, BLACKHOLE_DB)
        try:
            during = summary(self.lab.load(self.spec(target, users=users, connections=8, duration=window,
                                                     timeout=15))["records"])
        finally:
            self.lab.sh(replica, "nft delete table inet benchfault", check=False)
        self.settle()
        return {"replica": replica, "before": before, "during": during,
                "kept": during["rps"] / before["rps"] if before["rps"] else None}

    def cache_blip(self, products: int = 30, cut_s: float = 3.0) -> dict:
        """A memcached node's packets dropped for a few seconds while prices change (under reads), then every
        changed product page read through the load balancer: how many still showed the old price (target: 0)."""
        cache = self.lab.caches[-1]
        ids = json.loads(self.lab.django(CACHED_ON.format(node_index=len(self.lab.caches) - 1, count=products)))
        urls = json.loads(self.lab.django(URLS_OF.format(ids=ids)))
        read = lambda: json.loads(self.lab.python(self.lab.lb, PRICES_SEEN.format(urls=urls)))  # noqa: E731
        old = read()
        load = self.lab.start_load(self.spec(self.mixed_targets(), users=self.mixed_users(), connections=16,
                                             duration=cut_s + 20, rate=self.rate, timeout=15))
        time.sleep(2)
        self.lab.sh(cache, BLACKHOLE_CACHE)
        cut_wall = time.time()
        # The prices change on a web node while the node is cut off (the app's own save and invalidation path).
        changer = subprocess.Popen(["docker", "exec", Lab.container(self.lab.web[0]), "sh", "-c",
                                    MANAGE.format(shlex.quote(CHANGE_PRICES.format(ids=ids)))],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(max(0.0, cut_s - (time.time() - cut_wall)))
        self.lab.sh(cache, "nft delete table inet benchfault", check=False)
        healed_wall = time.time()
        changed_out, changed_err = changer.communicate(timeout=120)
        new = json.loads(changed_out.strip().splitlines()[-1]) if changer.returncode == 0 else {}
        # Right after the node answers again: every product page, three rounds.
        rounds = [read() for _ in range(3)]
        load.result()
        stale = [[pk, seen, new[pk]] for seen_round in rounds for pk, seen in seen_round.items()
                 if pk in new and seen != new[pk]]
        self.settle()
        return {"cache": cache, "products": len(ids), "cut_s": healed_wall - cut_wall,
                "prices_changed": len(new), "change_error": changed_err.strip()[-500:] if not new else "",
                "reads_after": sum(len(r) for r in rounds), "stale_reads_after": len(stale),
                "stale_examples": stale[:5], "prices_were_shown_before": sum(1 for price in old.values() if price)}

    def restart_web(self, web: str):
        subprocess.run(["docker", "start", Lab.container(web)], check=True, capture_output=True)

    def settle(self, cooldown: float = 30):
        """Between faults: every web node healthy again, and the app's cool-down of a host that failed (30 s,
        counted from the heal, most of which the run after the heal already took) over."""
        for web in self.lab.web:
            self.lab.wait_http(web, 8000, "/healthz", timeout=120)
        time.sleep(max(5.0, cooldown - 12))

    def converge_under_load(self) -> dict:
        """The same read load while `site.yml` (nothing to change) runs on this machine: in the lab the control
        node shares the servers' CPUs, and the primary's run below includes a converge; this shows what a
        converge alone costs the pages."""
        stop_file = "/var/tmp/django-stack-bench-stop"
        self.lab.sh(self.lab.lb, f"rm -f {stop_file}")
        users = self.mixed_users()
        load = self.lab.start_load(self.spec(self.mixed_targets(), users=users, connections=32, duration=600,
                                             rate=self.rate, timeout=15, stop_file=stop_file))
        burn_seconds = self.seconds(45)
        sampler = RunQueue(load.started)
        try:
            time.sleep(10)
            inject_at = time.time() - load.started
            run = playbook("site.yml under load, nothing to change", "site.yml")
            heal_at = time.time() - load.started
            time.sleep(15)
            # The control: as many busy loops as there were extra runnable processes during site.yml, nothing
            # else. If the pages slow down as much as under the converge, sharing the CPUs is what it costs them.
            extra = sampler.median(inject_at, heal_at) - sampler.median(0, inject_at)
            processes = max(os.cpu_count() or 1, round(extra))
            burn_at = time.time() - load.started
            burn_cpus(processes, burn_seconds)
            burn_end = time.time() - load.started
            time.sleep(10)
            # The other control: Ansible alone, one task on every host at a time, again and again.
            pings_at = time.time() - load.started
            pings = ansible_pings(burn_seconds)
            pings_end = time.time() - load.started
            time.sleep(10)
        finally:
            self.lab.sh(self.lab.lb, f"touch {stop_file}")
            sampler.stop()
        result = load.result()
        shift = result["started"] - load.started
        runnable = {"before": sampler.median(0, inject_at), "during site.yml": sampler.median(inject_at, heal_at),
                    "during the busy loops": sampler.median(burn_at, burn_end),
                    "during the pings": sampler.median(pings_at, pings_end)}
        inject_at, heal_at, burn_at, burn_end, pings_at, pings_end = (
            x - shift for x in (inject_at, heal_at, burn_at, burn_end, pings_at, pings_end))
        records = result["records"]
        base = summary(records, 2.0, inject_at)
        return {
            "burn": {"processes": processes, "at": burn_at, "end": burn_end,
                     "reads": summary(records, burn_at, burn_end)},
            "pings": {"runs": pings, "hosts": len(self.lab.hosts), "at": pings_at, "end": pings_end,
                      "reads": summary(records, pings_at, pings_end)},
            "runnable_median": runnable,
            "name": "site.yml running (nothing to change)",
            "span": "site.yml running",
            "inject_at": inject_at,
            "heal_at": heal_at,
            "playbook": run,
            "before": base,
            "during": summary(records, inject_at, heal_at),
            "after": summary(records, heal_at + 2.0, burn_at),
            "all": summary(records),
            "recover_s": time_to_recover(records, inject_at, base["p50_ms"]),
            "series": [[r[0], r[1], r[2]] for r in records],
            "rolling_p50": rolling_p50(records),
        }

    # --- the primary lost, a replica promoted ----------------------------------------------------------------
    # --- deploys and rollbacks (issue 17) ---------------------------------------------------------------------
    def pool_sampler(self, stop: threading.Event, samples: list):
        """[wall time, {server: status}] of the web backend on the load balancer, every half second."""
        while not stop.is_set():
            out = self.lab.sh(self.lab.lb, "echo 'show stat web 4 -1' | socat - /run/haproxy/admin.sock",
                              check=False).lstrip("# ")
            lines = out.splitlines()
            if lines:
                header = lines[0].split(",")
                rows = [dict(zip(header, line.split(","))) for line in lines[1:] if line]
                samples.append([time.time(), {row["svname"]: row["status"] for row in rows}])
            stop.wait(0.5)

    def source_copy(self, name: str, patch=None) -> Path:
        """The shop's source with a change of its own (a new release on every run of the benchmark)."""
        target = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        shutil.rmtree(target)
        shutil.copytree(ROOT / "app", target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        if patch:
            patch(target)
        (target / "BENCH_RELEASE.txt").write_text(f"{name} {time.time()}\n")
        return target

    def deploy_event(self, name: str, path: str, *args: str, expect_failure: bool = False,
                     before: float = 8.0, after: float = 8.0) -> dict:
        """A playbook run under the fault runs' load: what the pages saw, and when each web node was out of the
        pool (not UP on the load balancer)."""
        users = self.mixed_users()
        self.lab.sh(self.lab.lb, "rm -f /var/tmp/django-stack-bench-stop")
        load = self.lab.start_load(self.spec(self.mixed_targets(), users=users, connections=32, duration=900,
                                             rate=self.rate, timeout=15, stop_file="/var/tmp/django-stack-bench-stop"))
        stop, samples = threading.Event(), []
        sampler = threading.Thread(target=self.pool_sampler, args=(stop, samples), daemon=True)
        sampler.start()
        try:
            time.sleep(before)
            start_wall = time.time()
            print(f"bench: {name}", file=sys.stderr)
            run = subprocess.run([tool("ansible-playbook"), path, *args], cwd=ROOT, capture_output=True, text=True,
                                 check=False)
            end_wall = time.time()
            time.sleep(after)
        finally:
            self.lab.sh(self.lab.lb, "touch /var/tmp/django-stack-bench-stop")
            stop.set()
            sampler.join()
        if (run.returncode != 0) != expect_failure:
            raise LabError(f"{path} {'succeeded' if expect_failure else 'failed'} ({name}):\n{run.stdout[-3000:]}")
        result = load.result()
        zero = result["started"]
        records = result["records"]
        # Each web node's spans out of the pool, on the load's clock.
        spans: dict[str, list[list[float]]] = {}
        for wall, statuses in samples:
            for server, status in statuses.items():
                node_spans = spans.setdefault(server, [])
                out = not status.startswith("UP")
                if out and (not node_spans or node_spans[-1][1] is not None):
                    node_spans.append([wall - zero, None])
                elif not out and node_spans and node_spans[-1][1] is None:
                    node_spans[-1][1] = wall - zero
        for node_spans in spans.values():
            if node_spans and node_spans[-1][1] is None:
                node_spans[-1][1] = samples[-1][0] - zero
        inject_at, heal_at = start_wall - zero, end_wall - zero
        message = re.findall(r"Release \S+ was rolled back on [^\n]*(?:\n[^\n]+)*?(?=\n\n|\Z)", run.stdout)
        canary = re.findall(r"msg: (Canary .*?)(?=\n\S|\n\n)", run.stdout, re.S)
        return {
            "name": name,
            "span": name,
            "inject_at": inject_at,
            "heal_at": heal_at,
            "playbook_s": end_wall - start_wall,
            "rc": run.returncode,
            "out_of_pool": {server: [[a, b] for a, b in node_spans] for server, node_spans in spans.items() if node_spans},
            "message": " ".join(message[-1].split()) if message else "",
            "canary": " ".join(canary[-1].split()) if canary else "",
            "before": summary(records, 2.0, inject_at),
            "during": summary(records, inject_at, heal_at),
            "after": summary(records, heal_at + 2.0),
            "all": summary(records),
            "series": [[r[0], r[1], r[2]] for r in records],
            "rolling_p50": rolling_p50(records),
        }

    def deploys(self) -> list[dict]:
        """A code deploy, a deploy that changes uwsgi.ini (every node restarts), a rollback, and a release that
        answers 500 stopped at the canary; then the lab is put back as `make lab` left it (not measured)."""
        def mark(target):
            base = target / "shop" / "templates" / "base.html"
            base.write_text(base.read_text().replace("</body>", "<!-- bench release --></body>"))

        def broken(target):
            views = target / "catalog" / "views.py"
            views.write_text(views.read_text() + "\n\ndef _broken(self, request, *args, **kwargs):\n"
                             "    raise RuntimeError('a broken release')\n\n\nCategoryView.get = _broken\n"
                             "ProductView.get = _broken\n")

        new = self.source_copy("code", mark)
        results = [self.deploy_event("a code deploy", "playbooks/deploy.yml", "-e", f"django_web_project_src={new}")]
        self.settle(10)
        results.append(self.deploy_event("a deploy that changes uwsgi.ini (restarts)", "playbooks/deploy.yml",
                                         "-e", f"django_web_project_src={new}", "-e", "django_web_harakiri=31"))
        self.settle(10)
        results.append(self.deploy_event("a rollback", "playbooks/rollback.yml"))
        self.settle(10)
        results.append(self.deploy_event("a release answering 500, stopped at the canary", "playbooks/deploy.yml",
                                         "-e", f"django_web_project_src={self.source_copy('broken', broken)}",
                                         "-e", "django_web_harakiri=31", expect_failure=True))
        playbook("put the lab back", "playbooks/web.yml")
        self.settle(10)
        return results

    def timed(self, host: str, command: str) -> float:
        started = time.monotonic()
        self.lab.sh(host, command, timeout=3600)
        return time.monotonic() - started

    def backups(self) -> dict:
        """Backup and restore durations for the lab's data; then the primary's disk is lost under a stream of
        orders and the database restored from the backups alone (the full backup and the streamed binary logs):
        every order acknowledged up to 1 s before the loss must be back (target)."""
        backup = (self.lab.groups.get("backupservers") or [None])[0]
        if backup is None:
            raise LabError("the lab inventory has no backupservers host: add backup1 (inventories/lab), `make lab`")
        primary = self.lab.primary
        source = self.lab.replicas[-1] if self.lab.replicas else primary
        size = self.lab.sh(source, "mariadb -N -e " + shlex.quote(
            "SELECT COALESCE(SUM(data_length + index_length), 0), COALESCE(SUM(table_rows), 0) "
            "FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop'")).split()
        media_bytes = int(self.lab.sh(self.lab.media, "du -sb /srv/media | cut -f1").strip() or 0)
        durations = {
            "full database backup (on the replica)": self.timed(source, "systemctl start stack-backup-database"),
            "media backup": self.timed(self.lab.media, "systemctl start stack-backup-media"),
            "restore drill": self.timed(backup, "systemctl start stack-backup-drill"),
        }
        media = playbook("restore-media.yml, every file", "playbooks/restore-media.yml")
        durations["restore-media.yml, every file"] = media["seconds"]
        stop_file = "/var/tmp/django-stack-bench-backups-stop"
        self.lab.sh(self.lab.lb, f"rm -f {stop_file}")
        product_ids = [int(path.strip("/").split("/")[1]) for path in self.products[:100]]
        orders = self.lab.start_load({"users": self.writers(270, 4), "products": product_ids, "interval": 0.05,
                                      "duration": 120, "stop_file": stop_file}, script=WRITER_IN_CONTAINER)
        try:
            time.sleep(15)
            lost_wall = time.time()
            # The disk is gone: MariaDB killed, its data folder deleted.
            self.lab.sh(primary, "systemctl kill --signal=KILL mariadb; systemctl stop mariadb; rm -rf /var/lib/mysql")
            time.sleep(5)
        finally:
            self.lab.sh(self.lab.lb, f"touch {stop_file}")
        writes = orders.result()
        restore = playbook("restore-database.yml after the primary's disk was lost", "playbooks/restore-database.yml")
        durations["restore-database.yml (backup, replay, two replicas seeded again, a new backup)"] = restore["seconds"]
        acknowledged = []
        for t, step, status, order, seconds, _ in writes["records"]:
            if step == "checkout" and order:
                acknowledged.append((writes["started"] + t + seconds - lost_wall, order))
        present = set()
        if acknowledged:
            out = self.lab.sh(primary, "mariadb -N -e " + shlex.quote(
                "SELECT id FROM shop.orders_order WHERE id IN (%s)" % ",".join(str(o) for _, o in acknowledged)))
            present = {int(line) for line in out.split()}
        before = [(t, o) for t, o in acknowledged if t <= -1.0]
        last_second = [(t, o) for t, o in acknowledged if -1.0 < t <= 0]
        return {
            "database_bytes": int(size[0]) if size else 0,
            "database_rows": int(size[1]) if len(size) > 1 else 0,
            "media_bytes": media_bytes,
            "durations": durations,
            "acknowledged": len(acknowledged),
            "acknowledged_up_to_1s_before": len(before),
            "missing_up_to_1s_before": sorted(o for _, o in before if o not in present),
            "acknowledged_in_last_second": len(last_second),
            "missing_in_last_second": sorted(o for _, o in last_second if o not in present),
            "acknowledged_after_loss": sum(1 for t, _ in acknowledged if t > 0),
            "last_acknowledged_before_loss_s": max((t for t, _ in acknowledged if t <= 0), default=None),
        }

    def promoted_inventory(self, new_primary: str) -> Path:
        """A copy of the lab's inventory as the operator edits it after a promotion: the new primary under
        db_primary, the old one gone (it would be rebuilt as a replica later)."""
        source = ROOT / "inventories" / "lab"
        target = Path(tempfile.mkdtemp(prefix="django-stack-bench-")) / "lab"
        shutil.copytree(source, target)
        hosts = yaml.safe_load((target / "hosts.yml").read_text())
        db = hosts["lab"]["children"]["dbservers"]["children"]
        db["db_primary"]["hosts"] = {new_primary: None}
        db["db_replicas"]["hosts"] = {h: None for h in db["db_replicas"]["hosts"] if h != new_primary}
        (target / "hosts.yml").write_text(yaml.safe_dump(hosts))
        return target

    def primary(self) -> dict:
        """Stop the primary under load and a stream of orders; promote a replica, point the stack at it (the
        inventory change and site.yml), and count acknowledged orders missing on the new primary. The lab's
        topology differs afterwards: `make bench` rebuilds it when this part ran."""
        old, new = self.lab.primary, self.lab.replicas[0]
        stop_file = "/var/tmp/django-stack-bench-stop"
        self.lab.sh(self.lab.lb, f"rm -f {stop_file}")
        readers = self.mixed_users()
        writers = [[c, c.rsplit("=", 1)[1]] for c in self.cookies[200:260]]
        product_ids = [int(path.strip("/").split("/")[1]) for path in self.products[:200]]
        limit = 600
        load = self.lab.start_load(self.spec(self.mixed_targets(), users=readers, connections=32, duration=limit,
                                             rate=self.rate, timeout=15, stop_file=stop_file))
        orders = self.lab.start_load({"users": writers, "products": product_ids, "interval": 0.25,
                                      "duration": limit, "stop_file": stop_file}, script=WRITER_IN_CONTAINER)
        started = load.started
        timeline = {}
        try:
            time.sleep(10)
            timeline["primary stopped"] = time.time() - started
            stopped_wall = time.time()
            self.lab.sh(old, "systemctl stop mariadb")
            time.sleep(10)
            timeline["promotion started"] = time.time() - started
            promote = playbook(f"promote {new}", "playbooks/promote_replica.yml", "-e", f"promote_candidate={new}")
            timeline["promoted"] = time.time() - started
            inventory = self.promoted_inventory(new)
            # The runbook's order: the web tier first (writes come back once it has the new primary), then the
            # rest of the stack (grants, firewall rules, replicas) with site.yml.
            repoint = playbook("web.yml with the new primary in the inventory", "playbooks/web.yml",
                               "-i", str(inventory))
            timeline["web tier re-pointed"] = time.time() - started
            follow = playbook("site.yml with the new primary in the inventory", "site.yml", "-i", str(inventory))
            timeline["site.yml done"] = time.time() - started
            time.sleep(15)
        finally:
            self.lab.sh(self.lab.lb, f"touch {stop_file}")
        reads = load.result()
        writes = orders.result()
        shift = reads["started"] - started
        for key in timeline:
            timeline[key] -= shift
        write_shift = writes["started"] - reads["started"]
        write_records = [[t + write_shift, step, status, order, seconds, error]
                         for t, step, status, order, seconds, error in writes["records"]]
        acknowledged = [order for _, step, status, order, _, _ in write_records if step == "checkout" and order]
        present = set()
        if acknowledged:
            out = self.lab.sh(new, "mariadb -N -e " + shlex.quote(
                "SELECT id FROM shop.orders_order WHERE id IN (%s)" % ",".join(str(o) for o in acknowledged)))
            present = {int(line) for line in out.split()}
        stopped_at = timeline["primary stopped"]
        statuses: dict[str, int] = {}
        for _, step, status, *_ in write_records:
            key = f"{step} {status}"
            statuses[key] = statuses.get(key, 0) + 1
        records = reads["records"]
        # What the web nodes logged about failed requests since the stop, for the report's reader (the lab is
        # rebuilt next): each failure's status, path and the exception its traceback ended with.
        errors_logged, slow_writes_logged = {}, {}
        for web in self.lab.web:
            journal = self.lab.sh(web, f"journalctl -u shop --since @{int(stopped_wall) - 1} --no-pager -o cat",
                                  check=False)
            errors_logged[web] = logged_failures(journal)
            slow_writes_logged[web] = slow_requests(journal, "POST", 5000)
        haproxy_journal = self.lab.sh(self.lab.lb, f"journalctl -t haproxy --since @{int(stopped_wall) - 1} "
                                      "--no-pager -o cat", check=False)
        outage = write_outage(write_records, stopped_at)
        return {
            "errors_logged": errors_logged,
            "slow_writes_logged": slow_writes_logged,
            # POSTs that HAProxy logged as ended abnormally (its termination state): who closed, and when.
            "writes_abnormal_at_lb": haproxy_abnormal(haproxy_journal, "POST"),
            "writes_logged_at_lb": haproxy_journal.count('"POST '),
            # Every write that got no answer: [t, step, seconds waited, why].
            "writes_unanswered": [[t, step, seconds, error] for t, step, status, _, seconds, error in write_records
                                  if status == 0],
            "old": old,
            "new": new,
            "timeline": timeline,
            "promote_s": promote["seconds"],
            "repoint_s": repoint["seconds"],
            "follow_s": follow["seconds"],
            "reads_before": summary(records, 2.0, stopped_at),
            "reads_during": summary(records, stopped_at, timeline["site.yml done"]),
            "reads_after": summary(records, timeline["site.yml done"] + 2),
            "reads_all": summary(records),
            "read_errors": reads.get("errors", {}),
            "writes": statuses,
            "acknowledged": len(acknowledged),
            "lost": sorted(set(acknowledged) - present),
            "writes_failed_from_s": outage["first_failure_s"],
            "writes_resumed_s": outage["resumed_s"],
            "write_failures_after_resuming": outage["failures_after_resuming"],
            "series": [[r[0], r[1], r[2]] for r in records],
            "write_series": [[t, step, status] for t, step, status, *_ in write_records],
            "rolling_p50": rolling_p50(records),
        }
