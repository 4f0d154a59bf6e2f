"""Figures from the load generator's records: [start_s, latency_s, status, user, target, bytes]."""

from __future__ import annotations

import re


def ok(status: int) -> bool:
    """A request succeeded: an answer below 400 (redirects included). 0 is a connection failure or a timeout."""
    return 200 <= status < 400


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(records, start: float = 0.0, end: float = float("inf"), *, target: int | None = None) -> dict:
    """Requests started in [start, end): count, throughput, failures and latency percentiles in ms."""
    chosen = [r for r in records if start <= r[0] < end and (target is None or r[4] == target)]
    latencies = [r[1] for r in chosen if ok(r[2])]
    span = (min(end, max((r[0] + r[1] for r in chosen), default=start)) - start) if chosen else 0
    statuses: dict[int, int] = {}
    for r in chosen:
        statuses[r[2]] = statuses.get(r[2], 0) + 1
    sizes = [r[5] for r in chosen if ok(r[2]) and len(r) > 5]
    return {
        "requests": len(chosen),
        "rps": len(chosen) / span if span > 0 else 0.0,
        "failed": sum(1 for r in chosen if not ok(r[2])),
        "statuses": statuses,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p90_ms": percentile(latencies, 90) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies, default=float("nan")) * 1000,
        # The median response's size on the wire (head and body, as sent: compressed when it was).
        "bytes_p50": percentile(sizes, 50) if sizes else None,
    }


def rolling_p50(records, window: float = 1.0, step: float = 0.25) -> list[tuple[float, float]]:
    """(time, p50 ms) of the requests started in the window ending at each step."""
    if not records:
        return []
    end = max(r[0] for r in records)
    points = []
    t = window
    while t <= end + step:
        latencies = [r[1] for r in records if t - window <= r[0] < t]
        if latencies:
            points.append((t, percentile(latencies, 50) * 1000))
        t += step
    return points


def time_to_recover(records, fault_at: float, baseline_p50_ms: float, *, factor: float = 1.2,
                    hold: float = 2.0) -> float | None:
    """Seconds from the fault until the rolling p50 is within ``factor`` of the baseline and stays so for
    ``hold`` seconds; None if it never does within the run."""
    points = [(t, p) for t, p in rolling_p50(records) if t >= fault_at]
    for i, (t, _) in enumerate(points):
        later = [p for u, p in points[i:] if u < t + hold]
        if later and all(p <= baseline_p50_ms * factor for p in later) and points[-1][0] >= t + hold - 0.25:
            # The window [t - 1, t) is the first good one: recovered when it began.
            return max(0.0, t - 1.0 - fault_at)
    return None


def write_outage(write_records, stopped_at: float) -> dict:
    """The writes' outage after the primary stopped, from [t, step, status, ...] records: when the first write
    failed, when one succeeded again after that, and what the failures after that point were."""
    after = [r for r in write_records if r[0] >= stopped_at]
    first_failure = next((r[0] for r in after if not ok(r[2])), None)
    if first_failure is None:
        return {"first_failure_s": None, "resumed_s": None, "failures_after_resuming": {}}
    resumed = next((r[0] for r in after if r[0] > first_failure and ok(r[2])), None)
    failures_after: dict[str, int] = {}
    for r in after:
        if resumed is not None and r[0] > resumed and not ok(r[2]):
            key = f"{r[1]} {r[2]}"
            failures_after[key] = failures_after.get(key, 0) + 1
    return {
        "first_failure_s": first_failure - stopped_at,
        "resumed_s": None if resumed is None else resumed - stopped_at,
        "failures_after_resuming": failures_after,
    }


# The app logs "%(levelname)s %(name)s: %(message)s": "ERROR django.request: Internal Server Error: /path".
_REQUEST_LOGGED = re.compile(r"^(?:[A-Z]+ django\.request: )?(?P<phrase>[A-Z][A-Za-z ]+): (?P<path>/\S*)$")
_EXCEPTION = re.compile(r"^(?P<name>[A-Za-z_][\w.]*(?:Error|Exception|Interrupted|Exit))(?::\s?(?P<text>.*))?$")
_NUMBERS = re.compile(r"\d+(?:\.\d+)?s left")


def logged_failures(journal: str, *, limit: int = 12) -> list[list]:
    """Django's log of failed requests ("Internal Server Error: /path" and its traceback), counted by status
    phrase, path and the exception that ended the traceback: [[count, "phrase /path: Exception: text"], ...],
    most frequent first."""
    counts: dict[str, int] = {}
    current: list[str] | None = None  # [phrase, path, last exception line]

    def close():
        if current is not None:
            key = f"{current[0]} {current[1]}: {current[2] or '(no traceback)'}"
            counts[key] = counts.get(key, 0) + 1

    for line in journal.splitlines():
        line = line.rstrip()
        started = _REQUEST_LOGGED.match(line)
        if started:
            close()
            current = [started["phrase"], started["path"], ""]
            continue
        found = _EXCEPTION.match(line)
        if found and current is not None:
            current[2] = _NUMBERS.sub("Ns left", line)[:300]
    close()
    return [[n, key] for key, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))][:limit]


def weights(env: dict) -> str:
    """The report's " (lb1, web1, web2 with 4× the others' CPU weight)", when the containers' CPU weights differ."""
    shares = env.get("cpu_shares") or {}
    if len(set(shares.values())) < 2:
        return ""
    low = min(shares.values())
    groups: dict[int, list[str]] = {}
    for host, weight in sorted(shares.items()):
        if weight != low:
            groups.setdefault(weight, []).append(host)
    return " (" + "; ".join(f"{', '.join(hosts)} with {weight / low:g}×" for weight, hosts in
                            sorted(groups.items(), reverse=True)) + " the others' CPU weight)"


UWSGI_REQUEST = re.compile(r"\} \[[^\]]+\] (?P<method>[A-Z]+) (?P<path>\S+) => generated \d+ bytes in (?P<ms>\d+) msecs "
                           r"\(HTTP/[\d.]+ (?P<status>\d+)\)")


def slow_requests(journal: str, method: str, over_ms: int, limit: int = 20) -> list[str]:
    """uWSGI's request log lines (the shop unit's journal) of `method` requests that took over `over_ms`:
    "<ms> ms <status> <path>" in the order they were logged."""
    found = []
    for line in journal.splitlines():
        hit = UWSGI_REQUEST.search(line)
        if hit and hit["method"] == method and int(hit["ms"]) > over_ms:
            found.append(f"{hit['ms']} ms {hit['status']} {hit['path']}")
    return found[:limit]


HAPROXY_REQUEST = re.compile(r"\] (?P<frontend>\S+) (?P<server>\S+) (?P<timers>-?\d+/-?\d+/-?\d+/-?\d+/-?\d+) "
                             r"(?P<status>-?\d+) \d+ \S+ \S+ (?P<state>\S{4}) .*\"(?P<method>[A-Z]+) (?P<path>\S+)")


def haproxy_abnormal(journal: str, method: str, limit: int = 20) -> list[str]:
    """HAProxy's request log lines (journalctl -t haproxy) of `method` requests that did not end normally (a
    termination state other than "----"): "<state> <status> <server> <timers> <path>"."""
    found = []
    for line in journal.splitlines():
        hit = HAPROXY_REQUEST.search(line)
        if hit and hit["method"] == method and hit["state"] != "----":
            found.append(f"{hit['state']} {hit['status']} {hit['server']} {hit['timers']} {hit['path']}")
    return found[:limit]
