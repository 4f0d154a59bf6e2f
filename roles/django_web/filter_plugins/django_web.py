"""Filters of the django_web role: reading HAProxy's runtime API, and judging a canary.

HAProxy's ``show stat`` counters say how many answers each server gave and of which class; its request log
(``option httplog``) gives each request's server response time (Tr), the one latency a percentile can be
taken from (the counters keep only a moving average). The canary's verdict compares the first batch with the
other nodes over the same window.
"""

from __future__ import annotations

import csv
import io
import re

_CLASSES = ("hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other")
# option httplog: "... www~ web/web1 0/0/1/12/13 200 1234 ..." (Tq/Tw/Tc/Tr/Ta, then the status).
_LOG_LINE = re.compile(r" (?P<backend>[^ /]+)/(?P<server>[^ ]+) -?\d+/-?\d+/-?\d+/(?P<tr>-?\d+)/-?\d+ (?P<status>\d{3}) ")


def show_stat_servers(stdout: str) -> list[dict]:
    """The rows of ``show stat <backend> 4 -1`` (servers only), as dicts keyed by HAProxy's column names."""
    text = stdout.lstrip("# ").strip()
    if not text:
        return []
    return [row for row in csv.DictReader(io.StringIO(text)) if row.get("svname") not in ("FRONTEND", "BACKEND")]


def django_web_up(stdout: str) -> list[str]:
    """The servers UP in one load balancer's ``show stat`` (a server DOWN or in maintenance cannot be drained)."""
    return [row["svname"] for row in show_stat_servers(stdout) if row["status"].startswith("UP")]


def django_web_others_up(stdouts: list[str], nodes: list[str]) -> int:
    """How many servers other than ``nodes`` are UP, on the load balancer that has the fewest (0 without any)."""
    counts = [sum(1 for row in show_stat_servers(out) if row["svname"] not in nodes and row["status"].startswith("UP"))
              for out in stdouts]
    return min(counts) if counts else 0


def _answers(stdouts: list[str]) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = {}
    for out in stdouts:
        for row in show_stat_servers(out):
            server = totals.setdefault(row["svname"], {"requests": 0, "errors": 0})
            server["requests"] += sum(int(row.get(name) or 0) for name in _CLASSES)
            server["errors"] += int(row.get("hrsp_5xx") or 0)
    return totals


def _median(values: list[int]) -> int | None:
    values = sorted(values)
    return values[len(values) // 2] if values else None


def django_web_canary(before: list[str], after: list[str], logs: list[str], canary: list[str], backend: str,
                      min_requests: int = 10, max_5xx_increase: float = 0.01, max_p50_ratio: float = 2.0,
                      p50_slack_ms: int = 50) -> dict:
    """The canary's figures against the other servers UP over the window between ``before`` and ``after`` (the
    load balancers' ``show stat``), with the response times from their request logs, and the regressions seen:
    a canary not UP on every load balancer, a 5xx rate higher than the others' by more than ``max_5xx_increase``,
    or a p50 above ``max_p50_ratio`` times the others' and ``p50_slack_ms`` more."""
    start, end = _answers(before), _answers(after)
    up_everywhere = {}
    for out in after:
        for row in show_stat_servers(out):
            up_everywhere[row["svname"]] = up_everywhere.get(row["svname"], True) and row["status"].startswith("UP")
    others = [name for name, up in up_everywhere.items() if up and name not in canary]
    times: dict[str, list[int]] = {}
    for out in logs:
        for match in _LOG_LINE.finditer(out):
            if match["backend"] == backend and int(match["tr"]) >= 0:
                times.setdefault(match["server"], []).append(int(match["tr"]))

    def side(names):
        requests = sum(end.get(n, {}).get("requests", 0) - start.get(n, {}).get("requests", 0) for n in names)
        errors = sum(end.get(n, {}).get("errors", 0) - start.get(n, {}).get("errors", 0) for n in names)
        return {"servers": sorted(names), "requests": requests, "errors": errors,
                "error_rate": round(errors / requests, 4) if requests else 0.0,
                "p50_ms": _median([t for n in names for t in times.get(n, [])])}

    mine, theirs = side(canary), side(others)
    regressions = [f"{name} is not UP on every load balancer" for name in canary if not up_everywhere.get(name)]
    judged = mine["requests"] >= min_requests
    if judged and mine["error_rate"] > theirs["error_rate"] + max_5xx_increase:
        regressions.append(f"5xx rate {mine['error_rate']:.1%} ({mine['errors']} of {mine['requests']}) against "
                           f"{theirs['error_rate']:.1%} on the other nodes")
    if (judged and theirs["requests"] >= min_requests and mine["p50_ms"] is not None
            and theirs["p50_ms"] is not None and mine["p50_ms"] > theirs["p50_ms"] * max_p50_ratio
            and mine["p50_ms"] > theirs["p50_ms"] + p50_slack_ms):
        regressions.append(f"p50 {mine['p50_ms']} ms against {theirs['p50_ms']} ms on the other nodes")
    return {"canary": mine, "others": theirs, "judged": judged, "regressions": regressions}


class FilterModule:
    def filters(self):
        return {
            "django_web_others_up": django_web_others_up,
            "django_web_canary": django_web_canary,
            "django_web_servers": show_stat_servers,
            "django_web_up": django_web_up,
        }
