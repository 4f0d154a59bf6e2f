"""bench/results/REPORT.md and its plots, from the figures `make bench` measured."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from .scenarios import FAULT_LOAD_SHARE, MAX_FAULT_RATE
from .stats import weights


def ms(value: float) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1f}"


def kib(value: int) -> str:
    return f"{value / 1024:,.0f} KiB"


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-").replace("--", "-")


def plot_strategies(figures: dict, out: Path) -> str:
    names = [n for n in figures if n != "page"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.bar(names, [figures[n]["rps"] for n in names], color="#4878a8")
    left.set_title("Throughput (requests/s, higher is better)")
    p50 = [figures[n]["p50_ms"] for n in names]
    p99 = [figures[n]["p99_ms"] for n in names]
    x = range(len(names))
    right.bar([i - 0.2 for i in x], p50, width=0.4, label="p50", color="#4878a8")
    right.bar([i + 0.2 for i in x], p99, width=0.4, label="p99", color="#d08040")
    right.set_xticks(list(x), names)
    right.set_yscale("log")
    right.set_title("Latency (ms, log scale, lower is better)")
    right.legend()
    for axis in (left, right):
        axis.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    name = "strategies.png"
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


def plot_static(static: dict, out: Path) -> str:
    cases = static["cases"]
    names = list(cases)
    fig, axis = plt.subplots(figsize=(8, 3.6))
    colours = {"uWSGI": "#4878a8", "HAProxy": "#d08040", "nginx": "#70a070"}
    axis.barh(names, [cases[n]["rps"] for n in names],
              color=[next((c for k, c in colours.items() if k in n), "#888888") for n in names])
    axis.set_xlabel("requests/s (16 connections)")
    axis.set_title("Static files: uWSGI offload threads, HAProxy's cache, nginx")
    fig.tight_layout()
    name = "static.png"
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


def latency_plot(run: dict, failed_label: str = "failed request"):
    """A figure of each request's latency over time, failures marked, and the rolling p50 (faults, deploys)."""
    fig, axis = plt.subplots(figsize=(10, 3.8))
    good = [(t, lat * 1000) for t, lat, status in run["series"] if 200 <= status < 400]
    bad = [(t, max(lat * 1000, 0.1)) for t, lat, status in run["series"] if not 200 <= status < 400]
    if good:
        axis.scatter(*zip(*good), s=3, alpha=0.35, color="#4878a8", label="request")
    if bad:
        axis.scatter(*zip(*bad), s=14, marker="x", color="#c03030", label=failed_label)
    if run["rolling_p50"]:
        axis.plot(*zip(*run["rolling_p50"]), color="#202020", linewidth=1.5, label="p50 (1 s window)")
    return fig, axis


def save_latency_plot(fig, axis, title: str, name: str, out: Path) -> str:
    axis.set_yscale("log")
    axis.set_xlabel("seconds")
    axis.set_ylabel("latency (ms)")
    axis.set_title(title)
    axis.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


def plot_fault(fault: dict, out: Path) -> str:
    fig, axis = latency_plot(fault)
    axis.axvspan(fault["inject_at"], fault["heal_at"], color="#f0c040", alpha=0.25, label=fault.get("span", "fault"))
    if fault.get("burn"):
        axis.axvspan(fault["burn"]["at"], fault["burn"]["end"], color="#a060c0", alpha=0.2,
                     label="CPUs kept busy (control)")
    if fault.get("pings"):
        axis.axvspan(fault["pings"]["at"], fault["pings"]["end"], color="#40a060", alpha=0.2,
                     label="ansible all -m ping (control)")
    return save_latency_plot(fig, axis, fault["name"], f"fault-{slug(fault['name'])}.png", out)


def plot_deploy(event: dict, out: Path) -> str:
    """Latency over time during a deploy, with each web node's time out of the pool (drained, restarting, or
    down) as a band of its own colour."""
    fig, axis = latency_plot(event, "failed request (5xx included)")
    axis.axvline(event["inject_at"], color="#808080", linestyle="--", linewidth=1, label="playbook start / end")
    axis.axvline(event["heal_at"], color="#808080", linestyle="--", linewidth=1)
    colours = ["#f0c040", "#60b060", "#c080e0", "#e08040"]
    for index, (server, spans) in enumerate(sorted(event["out_of_pool"].items())):
        for number, (start, end) in enumerate(spans):
            axis.axvspan(start, end, color=colours[index % len(colours)], alpha=0.3,
                         label=f"{server} out of the pool" if number == 0 else None)
    return save_latency_plot(fig, axis, event["name"], f"deploy-{slug(event['name'])}.png", out)


def deploys_section(events: list[dict], out: Path) -> list[str]:
    lines = [
        "## Deploys and rollbacks under load",
        "",
        "`playbooks/deploy.yml` and `playbooks/rollback.yml` run while the fault runs' load goes through the load "
        "balancer (one node per batch, a 10 s canary). Out of the pool: the seconds each web node was not UP on "
        "the load balancer (drained, restarting, or rolled back), sampled every half second.",
        "",
        "| event | playbook s | requests | failed | 5xx | p50 ms before → during | p99 ms during | out of the pool | "
        "outcome |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    images = []
    for event in events:
        during = event["during"]
        fives = sum(n for status, n in during["statuses"].items() if 500 <= int(status) < 600)
        pool = ", ".join(f"{server} {sum(b - a for a, b in spans):.1f} s"
                         for server, spans in sorted(event["out_of_pool"].items())) or "none"
        outcome = event["message"] or ("done" if event["rc"] == 0 else f"failed (rc {event['rc']})")
        lines.append(f"| {event['name']} | {event['playbook_s']:.0f} | {during['requests']} | {during['failed']} | "
                     f"{fives} | {ms(event['before']['p50_ms'])} → {ms(during['p50_ms'])} | {ms(during['p99_ms'])} | "
                     f"{pool} | {outcome} |")
        images.append(plot_deploy(event, out))
    lines.append("")
    canaries = [f"- {event['name']}: {event['canary']}" for event in events if event.get("canary")]
    if canaries:
        lines += ["What each canary saw (the playbook's report):", "", *canaries, ""]
    for image in images:
        lines += [f"![{image}]({image})", ""]
    return lines


def plot_primary(primary: dict, out: Path) -> str:
    fig, (reads, writes) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, height_ratios=[3, 1])
    good = [(t, lat * 1000) for t, lat, status in primary["series"] if 200 <= status < 400]
    bad = [(t, max(lat * 1000, 0.1)) for t, lat, status in primary["series"] if not 200 <= status < 400]
    if good:
        reads.scatter(*zip(*good), s=3, alpha=0.35, color="#4878a8", label="read")
    if bad:
        reads.scatter(*zip(*bad), s=14, marker="x", color="#c03030", label="failed read")
    if primary["rolling_p50"]:
        reads.plot(*zip(*primary["rolling_p50"]), color="#202020", linewidth=1.5, label="p50 (1 s window)")
    reads.set_yscale("log")
    reads.set_ylabel("read latency (ms)")
    reads.set_title(f"primary {primary['old']} stopped, {primary['new']} promoted")
    colors = {"add": 0, "checkout": 1}
    for t, step, status in primary["write_series"]:
        ok = status in (301, 302, 303)
        writes.scatter(t, colors[step], s=10, marker="o" if ok else "x",
                       color="#40a040" if ok else ("#e09020" if status == 503 else "#c03030"))
    writes.set_yticks([0, 1], ["add to cart", "checkout"])
    writes.set_xlabel("seconds (green: done, orange: 503 read-only page, red: other failure)")
    for axis in (reads, writes):
        for label, t in primary["timeline"].items():
            axis.axvline(t, color="#808080", linestyle="--", linewidth=1)
    for label, t in primary["timeline"].items():
        reads.annotate(label, (t, 1), xycoords=("data", "axes fraction"), rotation=90, va="top", ha="right",
                       fontsize="small")
    reads.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    name = "fault-primary.png"
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


def unanswered_writes(primary: dict) -> list[str]:
    """The writes that got no answer (status 0), and the POSTs the web nodes logged as slow, if any."""
    unanswered = primary.get("writes_unanswered") or []
    slow = {web: found for web, found in (primary.get("slow_writes_logged") or {}).items() if found}
    abnormal = primary.get("writes_abnormal_at_lb") or []
    if not unanswered and not slow and not abnormal:
        return []
    stopped = primary["timeline"]["primary stopped"]
    lines = [f"Writes that got no answer (seconds after the stop, step, how long the writer waited, why): "
             + ("; ".join(f"{t - stopped:.0f} s {step} {seconds:.1f} s {error}"
                          for t, step, seconds, error in unanswered) or "none") + ".", ""]
    if slow:
        lines += ["POSTs the web nodes logged as taking over 5 s (uWSGI's request log):", "", "```",
                  *[f"{web}: {line}" for web, found in slow.items() for line in found], "```", ""]
    if abnormal:
        lines += ["POSTs HAProxy logged as ended abnormally (termination state, status, server, timers "
                  "Tq/Tw/Tc/Tr/Tt in ms, path):", "", "```", *abnormal, "```", ""]
    return lines


def routine_section(routine: dict) -> list[str]:
    """The routine events of a production week: a primary restart, a blackholed replica, a memcached blip."""
    restart = routine["primary_restart"]
    hole = routine["replica_blackhole_throughput"]
    blip = routine["cache_blip"]
    answered = restart["answered_s"]
    after = restart["failed_seconds_after_answering"]
    kept = hole["kept"]
    lines = [
        "## Routine events: a restart, a blackholed replica, a memcached blip",
        "",
        f"**Primary restarted** (`systemctl restart mariadb` on {restart['primary']}) under reads and 4 writers "
        f"(cart adds and orders, one every 50 ms each): it answered again {answered:.1f} s after the restart began"
        if answered is not None else
        f"**Primary restarted** ({restart['primary']}): its journal said nothing of being ready (not measured)",
    ]
    if answered is not None:
        lines[-1] += (f", its fencing check made it writable at {restart['writable_s']:.1f} s"
                      if restart.get("writable_s") is not None else "") + (
            f"; {restart['failed_writes']} of {restart['writes']} writes failed in all, "
            f"{restart['failed_writes_after_answering']} after it answered (statuses: "
            f"{', '.join(f'{k}: {v}' for k, v in sorted(restart['write_statuses'].items()))}). Reads: "
            f"{restart['reads']['failed']} failed of {restart['reads']['requests']}.")
    lines += [
        "",
        f"**Replica blackholed, flat out**: the uncached page (a replica read on every request), 8 connections, "
        f"{hole['before']['rps']:.0f} requests/s before and {hole['during']['rps']:.0f}/s while {hole['replica']}'s "
        f"packets were dropped ({hole['during']['failed']} failed).",
        "",
        f"**Memcached cut off**: {blip['cache']}'s packets dropped for {blip['cut_s']:.1f} s while the prices of "
        f"{blip['prices_changed']} products whose entries live there changed (saved on a web node, under reads); "
        f"then each product page read three times through the load balancer right after: "
        f"{blip['stale_reads_after']} of {blip['reads_after']} reads showed an old price."
        + (f" Change failed: {blip['change_error']}" if blip.get("change_error") else ""),
        "",
        "| target | measured | met |",
        "|---|---:|:---:|",
        f"| writes fail for under 1 s after the restarted primary answers | "
        f"{'not measured' if answered is None else f'{after:.2f} s'} | "
        f"{'yes' if answered is not None and after < 1 else 'no'} |",
        f"| a blackholed replica keeps at least 70% of the throughput | "
        f"{'not measured' if kept is None else f'{kept:.0%}'} | {'yes' if kept is not None and kept >= 0.7 else 'no'} |",
        f"| no stale read after a memcached blip | {blip['stale_reads_after']} stale | "
        f"{'yes' if blip['stale_reads_after'] == 0 and blip['prices_changed'] else 'no'} |",
        "",
    ]
    return lines


def backups_section(b: dict) -> list[str]:
    """Backup and restore durations, and the orders a lost primary disk cost (restored from the backups)."""
    met = not b["missing_up_to_1s_before"]
    lines = [
        "## Backups and restores",
        "",
        f"The lab's data: {b['database_bytes'] / 2**20:.1f} MiB in the shop's tables ({b['database_rows']:,} rows, "
        f"InnoDB's estimate), {b['media_bytes'] / 2**20:.1f} MiB of media files.",
        "",
        "| step | seconds |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {seconds:.1f} |" for name, seconds in b["durations"].items()]
    lines += [
        "",
        "The primary's disk lost under a stream of orders (4 customers through HAProxy, an order every 50 ms): "
        "MariaDB killed and its data folder deleted, then `playbooks/restore-database.yml` from the newest full "
        "backup and the binary logs streamed to the backup host.",
        "",
        "| target | measured | met |",
        "|---|---|---|",
        f"| every order acknowledged up to 1 s before the loss restored | {b['acknowledged_up_to_1s_before']} "
        f"acknowledged, {len(b['missing_up_to_1s_before'])} missing | {'yes' if met else 'no'} |",
        "",
        f"In the last second before the loss {b['acknowledged_in_last_second']} orders were acknowledged, "
        f"{len(b['missing_in_last_second'])} of them missing after the restore; {b['acknowledged_after_loss']} "
        "were acknowledged after it (none should be: the primary was gone).",
        "",
    ]
    return lines


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


# The lab as issue 20 measured it (bench/__main__.py).
NINE_HOSTS = "the 9 hosts of the lab without its monitoring and backup hosts"
NINE_HOSTS_COLD = f"site.yml on fresh containers, {NINE_HOSTS}"
NINE_HOSTS_AGAIN = f"site.yml again, nothing to change, {NINE_HOSTS}"


def shortest(run: dict, data: dict) -> float | None:
    """Minutes a run could take at the least on this machine: the CPU time it used (every process, the control
    node's and the servers') spread over all of the machine's CPUs, all of them busy all along."""
    cpus = data.get("environment", {}).get("cpus")
    return run["machine_cpu_s"] / cpus / 60 if run.get("machine_cpu_s") and cpus else None


def performance_targets(data: dict) -> list[list[str]]:
    """[target, measured, met] for each performance target whose part ran."""
    rows = []
    ansible = {row["name"]: row for row in data.get("ansible", [])}
    cold = ansible.get("site.yml on fresh containers")
    again = ansible.get("site.yml again, nothing to change")
    if again:
        rows.append(["site.yml with nothing to change: under 60 s", f"{again['seconds']:.0f} s, {again['changed']} "
                     "changed", again["seconds"] < 60 and again["changed"] == 0])
    if cold:
        rows.append(["site.yml on fresh containers: under 3 min", f"{cold['seconds'] / 60:.1f} min"
                     + (f" (all CPUs busy all along: at least {bound:.1f} min)" if (bound := shortest(cold, data))
                        else ""), cold["seconds"] < 180])
    nine_cold = ansible.get(NINE_HOSTS_COLD)
    nine_again = ansible.get(NINE_HOSTS_AGAIN)
    if nine_again:
        rows.append([f"site.yml with nothing to change, {NINE_HOSTS}: under 60 s",
                     f"{nine_again['seconds']:.0f} s, {nine_again['changed']} changed",
                     nine_again["seconds"] < 60 and nine_again["changed"] == 0])
    if nine_cold:
        rows.append([f"site.yml on fresh containers, {NINE_HOSTS}: under 3 min",
                     f"{nine_cold['seconds'] / 60:.1f} min", nine_cold["seconds"] < 180])
    compression = data.get("compression")
    if compression:
        packed, plain = compression["gzip"], compression["uncompressed"]
        smaller = ratio(plain["bytes_p50"] or 0, packed["bytes_p50"] or 0)
        slower = ratio(packed["p50_ms"], plain["p50_ms"])
        rows.append(["catalog page's bytes on the wire, gzip: at least 5× smaller",
                     f"{smaller:.1f}× ({plain['bytes_p50']:,} → {packed['bytes_p50']:,} bytes)", smaller >= 5])
        rows.append(["catalog page's p50, gzip: at most 1.10× uncompressed (the same steady rate)",
                     f"{slower:.2f}× ({ms(plain['p50_ms'])} → {ms(packed['p50_ms'])} ms)", slower <= 1.10])
    strategies = data.get("strategies")
    if strategies and "page" in strategies:
        tp, un, wp = strategies["two-pass"], strategies["uncached"], strategies["whole-page"]
        page = strategies["page"]
        uncached_ms = page["calibration"][-1]["p50_ms"]
        rows.append([f"the strategies' page: uncached render at least {page['calibration_ms']:.0f} ms",
                     f"{page['products']} products, {ms(uncached_ms)} ms", uncached_ms >= page["calibration_ms"]])
        rows.append(["two-pass vs uncached, logged in: at least 10× (requests/s and p50)",
                     f"{ratio(tp['rps'], un['rps']):.1f}× requests/s, {ratio(un['p50_ms'], tp['p50_ms']):.1f}× p50",
                     ratio(tp["rps"], un["rps"]) >= 10 and ratio(un["p50_ms"], tp["p50_ms"]) >= 10])
        rows.append(["whole-page `cache_page` vs two-pass, logged in: within 1.3× (requests/s and p50)",
                     f"{ratio(wp['rps'], tp['rps']):.2f}× requests/s, {ratio(tp['p50_ms'], wp['p50_ms']):.2f}× p50",
                     ratio(wp["rps"], tp["rps"]) <= 1.3 and ratio(tp["p50_ms"], wp["p50_ms"]) <= 1.3])
    static = data.get("static")
    if static:
        cases = static["cases"]
        for size in ("small", "large"):
            lb, nginx = cases.get(f"{size}, through HAProxy (TLS, its cache)"), cases.get(f"{size}, nginx")
            if lb and nginx:
                rows.append([f"{size} hashed static file through the load balancer: at least 0.8× nginx direct "
                             "(requests/s)", f"{ratio(lb['rps'], nginx['rps']):.2f}× ({lb['rps']:,.0f} vs "
                             f"{nginx['rps']:,.0f})", ratio(lb["rps"], nginx["rps"]) >= 0.8])
    monitoring = data.get("monitoring")
    if monitoring and "skipped" not in monitoring:
        rows.append(["pages with monitoring on: p50 at most 1.05× off (the same steady rate)",
                     f"{monitoring['p50_ratio']:.3f}×",
                     monitoring["p50_ratio"] <= 1.05])
    return [[target, measured, "yes" if met else "no"] for target, measured, met in rows]


def render(data: dict, out: Path) -> str:
    env = data["environment"]
    lines = [
        "# Benchmarks and fault injection",
        "",
        f"Run {env['date']} by `make bench`{' --quick (short loads)' if env.get('quick') else ''}"
        + (f", in {env['duration_s'] / 60:.0f} minutes" if env.get("duration_s") else "") + ". "
        f"Machine: {env['cpus']} CPUs, {env['memory_gib']:.0f} GiB, "
        f"{env['kernel']}. The lab: {env['web_nodes']} web nodes (uWSGI {env['uwsgi_processes']} processes × "
        f"{env['uwsgi_threads']} threads each), {env['replicas']} read replicas, {env['cache_nodes']} memcached "
        f"nodes, Debian {env['nodes_debian']} containers all sharing this machine's CPUs{weights(env)}, release "
        f"`{env['release']}`.",
        "",
        *([env["note"], ""] if env.get("note") else []),
        "Every figure comes from one run; compare the rows of a table (measured side by side, interleaved), "
        "not absolute numbers across machines. The load generator (`bench/loadgen.py`) runs in the load "
        "balancer's container and competes with the stack for the same CPUs.",
        "",
    ]
    ceiling = data.get("ceiling")
    if ceiling:
        lines += [
            "## The load generator's ceiling",
            "",
            f"A response HAProxy makes itself (the plain-HTTP redirect): **{ceiling['rps']:,.0f} requests/s**, "
            f"p50 {ms(ceiling['p50_ms'])} ms with 16 connections. Every figure below is well under it unless "
            "noted, so the generator is not what limits them.",
            "",
        ]
    targets = performance_targets(data)
    if targets:
        lines += [
            "## Performance targets",
            "",
            "Each measured in this run, side by side with what it is compared to (the sections below give the "
            "tables).",
            "",
            "| target | measured | met |",
            "|---|---:|:---:|",
            *[f"| {target} | {measured} | {met} |" for target, measured, met in targets],
            "",
        ]
    strategies = data.get("strategies")
    if strategies:
        image = plot_strategies(strategies, out)
        page = strategies.get("page")
        if page:
            tried = ", ".join(f"{t['size']}: {ms(t['p50_ms'])} ms" for t in page["calibration"])
            about = (f"The catalog's first page with {page['products']} products: the smallest of the sizes tried "
                     f"whose uncached page costs at least {page['calibration_ms']:.0f} ms at p50 here (one "
                     f"connection; {tried}). Cache memory is measured on the shop's own page size. ")
        else:
            about = ""
        lines += [
            "## Page caching strategies (the same catalog page through HAProxy)",
            "",
            about + f"Logged-in users ({env['users']}, a session each) take turns; whole-page `cache_page` and "
            "\"two-pass (anonymous)\" carry no cookie. 8 connections, interleaved rounds. Cache memory: "
            "memcached's `bytes` on all nodes after each of the users fetched the page once from an empty cache, "
            "minus the uncached run (sessions, users and data cache that every strategy needs).",
            "",
            "| strategy | requests/s | p50 ms | p90 ms | p99 ms | failed | cache memory over baseline |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, f in strategies.items():
            if name == "page":
                continue
            memory = kib(f["cache_bytes_over_baseline"]) if "cache_bytes_over_baseline" in f else "–"
            lines.append(f"| {name} | {f['rps']:,.0f} | {ms(f['p50_ms'])} | {ms(f['p90_ms'])} | {ms(f['p99_ms'])} "
                         f"| {f['failed']} | {memory} |")
        tp, un, wp = strategies["two-pass"], strategies["uncached"], strategies["whole-page"]
        tpa = strategies["two-pass (anonymous)"]
        lines += [
            "",
            f"- two-pass vs uncached: **{tp['rps'] / un['rps']:.1f}×** the throughput "
            f"(p50 {ms(un['p50_ms'])} → {ms(tp['p50_ms'])} ms).",
            f"- whole-page `cache_page` vs two-pass: {wp['rps'] / tp['rps']:.2f}× the throughput for logged-in "
            f"users (p50 {ms(tp['p50_ms'])} → {ms(wp['p50_ms'])} ms), {wp['rps'] / tpa['rps']:.2f}× for anonymous "
            "ones (the same requests: no cookie).",
            f"- cache memory for {env['users']} users: two-pass {kib(tp['cache_bytes_over_baseline'])}, per-user "
            f"{kib(strategies['per-user']['cache_bytes_over_baseline'])}.",
            "",
            f"![strategies]({image})",
            "",
        ]
    compression = data.get("compression")
    if compression:
        lines += [
            "## Compressed pages",
            "",
            "The catalog's home page for logged-in users through HAProxy, with `Accept-Encoding: gzip` and without, "
            "interleaved rounds. Django's GZipMiddleware compresses it (with random padding against BREACH: the page "
            "carries a CSRF token); bytes are the response on the wire, head included. Requests/s: flat out, 4 "
            "connections. Latency: both at the same steady rate, "
            f"{next(iter(compression.values())).get('steady_rate', 0)} requests/s (40% of the uncompressed page's "
            "flat-out throughput, open loop), where a request's latency is its own and not a queue's.",
            "",
            "| case | bytes | requests/s flat out | p50 ms | p90 ms | p99 ms | failed |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, f in compression.items():
            lines.append(f"| {name} | {f['bytes_p50'] or 0:,} | {f['rps']:,.0f} | {ms(f['p50_ms'])} | "
                         f"{ms(f['p90_ms'])} | {ms(f['p99_ms'])} | {f['failed']} |")
        lines.append("")
    static = data.get("static")
    if static:
        image = plot_static(static, out)
        cases = static["cases"]
        lines += [
            "## Static files",
            "",
            f"The same hashed files ({static['sizes']['small']:,} and {static['sizes']['large']:,} bytes, no "
            "compression asked) from a web node's uWSGI offload threads, through HAProxy (TLS, from its cache of "
            "the hashed files) and from nginx on the media node (a container of the same kind, plain HTTP), 16 "
            "connections, interleaved rounds, from the load balancer's container. HAProxy and nginx are measured "
            "with wrk (Debian's package, C and OpenSSL: at these rates the Python generator's own TLS would be what "
            "limits the HAProxy figures), uWSGI with `bench/loadgen.py` (its http-socket closes the connection "
            "after each response, which wrk counts as errors); p50 and p99 are the rounds' medians. Each as "
            "shipped: HAProxy leaves what it serves from its cache out of its request log "
            "(`haproxy_log_static_cache_hits`), nginx writes every request to its access log.",
            "",
            "| case | requests/s | p50 ms | p99 ms | failed |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, f in cases.items():
            lines.append(f"| {name} | {f['rps']:,.0f} | {ms(f['p50_ms'])} | {ms(f['p99_ms'])} | {f['failed']} |")
        busy = static["busy"]
        lines += [
            "",
            f"Every worker thread of every web node busy ({busy['slots']} slow requests of 4 s at once on each of "
            f"the {busy['nodes']} nodes), against the same requests with idle workers (6 connections, the three "
            "kinds mixed):",
            "",
            "| request | idle: requests/s | idle: p50 ms | busy: requests/s | busy: p50 ms | busy: failed |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for key, label in (("static_direct", "static file, straight to a web node (uWSGI offload)"),
                           ("page_direct", "page, straight to a web node"),
                           ("static_lb", "static file through HAProxy (its cache)")):
            idle, load = busy[f"{key}_idle"], busy[f"{key}_busy"]
            lines.append(f"| {label} | {idle['rps']:,.0f} | {ms(idle['p50_ms'])} | {load['rps']:,.0f} | "
                         f"{ms(load['p50_ms'])} | {load['failed']} |")
        def kept(key):
            idle = busy[f"{key}_idle"]["rps"]
            return busy[f"{key}_busy"]["rps"] / idle if idle else 0.0

        lines += [
            "",
            f"With every worker busy, static files straight to a node kept {kept('static_direct'):.0%} of their idle "
            f"throughput, pages {kept('page_direct'):.0%}, static files through HAProxy {kept('static_lb'):.0%}. "
            "uWSGI reads every request in a worker thread: its offload threads free the worker from sending a file, "
            "not from taking the request. HAProxy's cache of the hashed static files (`haproxy_static_cache_mb`) "
            "serves them without a web node.",
            "",
            f"![static]({image})",
            "",
        ]
    overhead = data.get("lb_overhead")
    if overhead:
        names = list(overhead)
        a, b = overhead[names[0]], overhead[names[1]]
        lines += [
            "## Load balancer overhead",
            "",
            "A category page for logged-in users, 4 connections (neither side saturated), interleaved.",
            "",
            "| path | requests/s | p50 ms | p90 ms | p99 ms | failed |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, f in overhead.items():
            lines.append(f"| {name} | {f['rps']:,.0f} | {ms(f['p50_ms'])} | {ms(f['p90_ms'])} | {ms(f['p99_ms'])} "
                         f"| {f['failed']} |")
        lines += ["", f"HAProxy with TLS adds {a['p50_ms'] - b['p50_ms']:.2f} ms at p50 "
                  f"({a['p50_ms'] / b['p50_ms']:.2f}×).", ""]
    monitoring = data.get("monitoring")
    if monitoring and "skipped" not in monitoring:
        on, off = monitoring["monitoring on"], monitoring["monitoring off"]
        ratio = monitoring["p50_ratio"]
        lines += [
            "## The cost of monitoring",
            "",
            "A category page for logged-in users through HAProxy, in interleaved rounds: with every monitoring "
            "process running (Prometheus scraping every 5 s in the lab, each exporter, the probes, the journal's "
            "upload, HAProxy's request log included) and with all of them stopped ("
            + ", ".join(f"`{u}`" for u in monitoring["units"]) + "). Requests/s: flat out, 4 connections. "
            "Latency: both at the same steady rate, "
            f"{on.get('steady_rate', 0)} requests/s (40% of the flat-out throughput without monitoring, open loop). "
            + (f"{monitoring['rounds']} rounds of each, in the order on, off, off, on, …; after each start, the "
               "runs waited until Prometheus answered ready and every host's journal uploader had sent what was "
               f"logged while it was stopped (at most {monitoring['settle_s']:.0f} s): what is measured is "
               "monitoring's steady state, not its start." if "settle_s" in monitoring else ""),
            "",
            "| case | requests/s flat out | p50 ms | p90 ms | p99 ms | failed | p50 ms flat out |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name in ("monitoring on", "monitoring off"):
            f = monitoring[name]
            lines.append(f"| {name} | {f['rps']:,.0f} | {ms(f['p50_ms'])} | {ms(f['p90_ms'])} | {ms(f['p99_ms'])} "
                         f"| {f['failed']} | {ms(f.get('flat_out_p50_ms'))} |")
        lines += ["", f"p50 with monitoring on is **{ratio:.3f}×** off at the steady rate (target: at most 1.05×, "
                  f"{'met' if ratio <= 1.05 else 'not met'}); flat out, requests/s {on['rps'] / off['rps']:.3f}×.",
                  ""]
    ansible = data.get("ansible")
    if ansible:
        lines += ["## Ansible", "", "| run | time | changed | the servers' CPU | the machine's CPU |",
                  "|---|---:|---:|---:|---:|"]
        for row in ansible:
            cpu = f"{row['servers_cpu_s']:.0f} s" if row.get("servers_cpu_s") is not None else "–"
            machine = f"{row['machine_cpu_s']:.0f} s" if row.get("machine_cpu_s") is not None else "–"
            lines.append(f"| {row['name']} | {row['seconds']:.0f} s | {row['changed']} | {cpu} | {machine} |")
        lines += ["", "The servers' CPU: what the lab's containers used during the run (cgroup accounting), the "
                  "modules' share of the work; the rest is the control node's. The machine's CPU: every process "
                  f"of this machine, the control node's and the servers' ({env.get('cpus', '?')} CPUs: a run cannot "
                  "take less than this divided by the CPUs). The repository's ansible.cfg runs "
                  "the linear strategy through Mitogen (one Python interpreter per server for the whole run); the "
                  "run without it is the same tasks with a new interpreter for each. The lab as issue 20 measured "
                  f"it had nine hosts: the runs on {NINE_HOSTS} (its inventory with the groups `backupservers` and "
                  "`monitoring` left out, so no host has a monitoring agent or a backup client either) are the last "
                  "two rows; they ran first, on fresh containers of their own.", ""]
        for row in ansible:
            if row.get("slowest"):
                lines += [f"The ten slowest of the {row['tasks']} tasks of \"{row['name']}\" (the task-profile "
                          "callback, ansible.posix.profile_tasks: each task's time across all of its hosts):", "",
                          "| task | seconds |", "|---|---:|",
                          *[f"| {task.replace('|', '/')} | {seconds:.1f} |" for task, seconds in row["slowest"]], ""]
    faults = data.get("faults")
    if faults:
        lines += [
            "## Fault injection under load",
            "",
            f"{env.get('fault_rate', 40)} requests/s"
            + (f" ({FAULT_LOAD_SHARE:.0%} of the {env['mixed_flat_out_rps']:.0f}/s these pages get flat out from 8 "
               f"connections on this machine, at most {MAX_FAULT_RATE})" if "mixed_flat_out_rps" in env else "")
            + " (open loop: a stalled request counts from when it should have started) for about 32 s: "
            "category pages, product pages and the uncached page (which reads a replica on every request), half "
            "from logged-in users. The fault starts at 10 s and is healed at 20 s. Failed: a connection error, a "
            "timeout or a status of 400 or more. Recovery: from the fault until the p50 of a 1 s window is back "
            "within 1.2× of before and stays there 2 s.",
            "",
            "| fault | failed | p50 before | p50 during | p99 during | p50 after | recovered in |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        images = []
        for fault in faults:
            recover = "never" if fault["recover_s"] is None else f"{fault['recover_s']:.1f} s"
            lines.append(f"| {fault['name']} | {fault['all']['failed']} of {fault['all']['requests']} | "
                         f"{ms(fault['before']['p50_ms'])} ms | {ms(fault['during']['p50_ms'])} ms | "
                         f"{ms(fault['during']['p99_ms'])} ms | {ms(fault['after']['p50_ms'])} ms | {recover} |")
            images.append(plot_fault(fault, out))
        failed = sum(f["all"]["failed"] for f in faults)
        lines += [
            "",
            "| target | measured | met |",
            "|---|---:|:---:|",
            f"| no failed read in any fault | {failed} failed | {'yes' if failed == 0 else 'no'} |",
        ]
        for fault in faults:
            if fault["name"].startswith("replica"):
                recover = fault["recover_s"]
                met = recover is not None and recover < 5
                lines.append(f"| {fault['name']}: p50 within 1.2× of before in under 5 s | "
                             f"{'never' if recover is None else f'{recover:.1f} s'} | {'yes' if met else 'no'} |")
        lines.append("")
        for image in images:
            lines += [f"![{image}]({image})", ""]
    routine = data.get("routine")
    if routine:
        lines += routine_section(routine)
    deploys = data.get("deploys")
    if deploys:
        lines += deploys_section(deploys, out)
    backups = data.get("backups")
    if backups:
        lines += backups_section(backups)
    converge = data.get("converge_under_load")
    if converge:
        image = plot_fault(converge, out)
        lines += [
            "## A converge under load",
            "",
            f"The same read load while `site.yml` runs with nothing to change ({converge['playbook']['seconds']:.0f} s, "
            f"{converge['playbook']['changed']} changed). In the lab the control node and every server share this "
            "machine's CPUs."
            + (f" Changed: {'; '.join(converge['playbook'].get('changed_tasks', []))}."
               if converge["playbook"]["changed"] and converge["playbook"].get("changed_tasks") else "")
            + (" Docker writes a container's /etc/hosts afresh whenever it starts the container again (the web-node "
               "fault restarted one), so the common role puts its entries back; on a server nothing else writes it."
               if any("/etc/hosts" in task for task in converge["playbook"].get("changed_tasks", [])) else ""),
            "",
            "| reads | requests | failed | p50 ms | p99 ms | runnable processes (median) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        runnable = converge.get("runnable_median", {})
        rows = [("before", converge["before"], runnable.get("before")),
                ("during site.yml", converge["during"], runnable.get("during site.yml")),
                ("after", converge["after"], None)]
        burn = converge.get("burn")
        if burn:
            rows.append((f"control: {burn['processes']} busy loops, no Ansible ({burn['end'] - burn['at']:.0f} s)",
                         burn["reads"], runnable.get("during the busy loops")))
        pings = converge.get("pings")
        if pings:
            rows.append((f"control: Ansible alone, `ansible all -m ping` {pings['runs']} times "
                         f"({pings['end'] - pings['at']:.0f} s)", pings["reads"], runnable.get("during the pings")))
        for label, f, queue in rows:
            lines.append(f"| {label} | {f['requests']} | {f['failed']} | {ms(f['p50_ms'])} | {ms(f['p99_ms'])} | "
                         f"{'–' if queue is None else f'{queue:.0f}'} |")
        if burn:
            lines += ["", "The control row, measured in the same run: as many plain busy loops as there were extra "
                      "runnable processes during site.yml (at least one per CPU), without Ansible. Latency as high "
                      "there as during site.yml would mean the converge costs the pages CPU time on a shared "
                      "machine; latency much lower there means something else in the run holds the pages up."]
        if pings:
            lines += ["", f"The last row: Ansible with nothing to do, one task at a time on all {pings['hosts']} "
                      "hosts at once (as the common play of site.yml runs its tasks), repeated. Each task starts a "
                      "Python process in every container at the same moment (a `docker exec` in the lab, where "
                      "an SSH session would be on real servers); here those processes share this machine's CPUs "
                      "with the pages, on real servers each runs on its own server's CPUs."]
        lines += ["", f"![converge]({image})", ""]
    primary = data.get("primary")
    if primary:
        image = plot_primary(primary, out)
        t = primary["timeline"]
        resumed = primary["writes_resumed_s"]
        if resumed is None:
            resumed_text = "Writes did not resume within the run."
        else:
            resumed_text = (f"Writes failed from {primary['writes_failed_from_s']:.1f} s after the stop and resumed "
                            f"{resumed:.0f} s after it ("
                            f"{resumed + t['primary stopped'] - t['promoted']:.0f} s after the promotion ended; "
                            f"web.yml ended {t['web tier re-pointed'] - t['promoted']:.0f} s after it).")
            after = primary.get("write_failures_after_resuming") or {}
            if after:
                failed_after = ", ".join(f"{k}: {v}" for k, v in sorted(after.items()))
                resumed_text += f" Failed writes after that: {failed_after}."
        writes = ", ".join(f"{k}: {v}" for k, v in sorted(primary["writes"].items()))
        lines += [
            "## The primary lost, a replica promoted",
            "",
            f"The same read load, plus logged-in users placing orders one after another (add to cart, then checkout, "
            f"4 a second). At {t['primary stopped']:.0f} s MariaDB stops on {primary['old']}; 10 s later "
            f"`playbooks/promote_replica.yml -e promote_candidate={primary['new']}` runs "
            f"({primary['promote_s']:.0f} s). Then, with the inventory changed as that playbook says "
            f"({primary['new']} under db_primary, {primary['old']} out), `playbooks/web.yml` points the web nodes at "
            f"the new primary ({primary['repoint_s']:.0f} s) and `site.yml` makes the rest of the stack follow "
            f"({primary['follow_s']:.0f} s).",
            "",
            "| reads | requests | failed | p50 ms | p99 ms |",
            "|---|---:|---:|---:|---:|",
        ]
        for key, label in (("reads_before", "before"), ("reads_during", "primary down → stack follows"),
                           ("reads_after", "after")):
            f = primary[key]
            lines.append(f"| {label} | {f['requests']} | {f['failed']} | {ms(f['p50_ms'])} | {ms(f['p99_ms'])} |")
        lost = primary["lost"]
        bad_writes = sum(count for key, count in primary["writes"].items()
                         if not key.endswith((" 302", " 303", " 503")))
        lines += [
            "",
            f"Writes (step status: count): {writes}. Acknowledged orders: {primary['acknowledged']}; missing on the "
            f"new primary: **{len(lost)}**{' (' + ', '.join(map(str, lost)) + ')' if lost else ''}. {resumed_text}",
            "",
            "| target | measured | met |",
            "|---|---:|:---:|",
            f"| no failed read while the primary is down | {primary['reads_all']['failed']} failed | "
            f"{'yes' if primary['reads_all']['failed'] == 0 else 'no'} |",
            f"| no acknowledged order lost | {len(lost)} lost | {'yes' if not lost else 'no'} |",
            f"| a write that cannot be saved gets the 503 read-only page, never another error | "
            f"{bad_writes} other errors | {'yes' if bad_writes == 0 else 'no'} |",
            "",
            "Failed requests the web nodes logged from the stop on (count, node, status and path, the exception "
            "that ended the traceback):",
            "",
            "```",
            *[f"{count:5d} {web}: {line}" for web, found in primary.get("errors_logged", {}).items()
              for count, line in found],
            "```",
            "",
            *unanswered_writes(primary),
            f"![primary]({image})",
            "",
        ]
    lines += [
        "## Reproduce",
        "",
        "```",
        "make lab      # the lab, with the benchmark's pages on (inventories/lab)",
        "make bench    # this report, in bench/results/",
        "```",
        "",
    ]
    return "\n".join(lines)
