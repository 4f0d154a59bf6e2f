"""Page caching strategies on the same catalog page, measured side by side in one run.

    scripts/app-test.sh python -m bench.strategies [--users 1000] [--rounds 5] [--per-round 40]
    (make bench-app)

Strategies (shop.urls_bench): ``uncached`` (no data cache, no page cache), ``two-pass`` (the shop's pages),
``per-user`` (``cache_page`` + ``vary_on_cookie``: one full copy per user) and ``whole-page`` (``cache_page`` for
requests without cookies: one copy for everyone, the upper bound a shared page can reach). Logged-in users,
each with their own session, take turns; ``two-pass-anonymous`` is the two-pass page for requests without
cookies, the like-for-like comparison with ``whole-page``. The page is the catalog's first page of 10,000
products, with as many products as it takes for its uncached render to cost at least 50 ms on this machine (the
smallest of 96, 192, 384, 768 that does; ``--page-size`` to fix it).

The runs are interleaved (a few requests of each strategy per round, for several rounds), in one process, so
drift of the machine hits every strategy alike; the report gives ratios. Cache memory is memcached's ``bytes``
after every user fetched the page once, minus the same figure without page caching (sessions, data cache).
Nothing here is a pass/fail test: the targets are printed beside the measurements.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path


def setup_django():
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    django.setup()


def memcached_bytes() -> int:
    from django.core.cache import cache

    stats = cache._cache.get_stats()
    return sum(int(s[1].get("bytes", 0)) for s in stats)


def percentile(values, p):
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=40)
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--page-size", type=int, default=0,
                        help="products on the page (default: the smallest of 96, 192, 384, 768 whose uncached "
                             "render costs at least 50 ms here)")
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args(argv)

    setup_django()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connections
    from django.test import Client
    from django.test.utils import override_settings

    print("bench: migrating, loading the catalog and the users", file=sys.stderr)
    call_command("migrate", interactive=False, verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    call_command("make_demo_catalog", products=args.products, categories=100, no_images=True, verbosity=0)
    User = get_user_model()
    password = make_password("bench-password")
    User.objects.bulk_create(
        [User(username=f"bench{i:05d}", password=password) for i in range(args.users)], ignore_conflicts=True
    )
    users = list(User.objects.using("default").filter(username__startswith="bench").order_by("username"))
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT @@gtid_binlog_pos")
        (position,) = cursor.fetchone()
    with connections["replica_1"].cursor() as cursor:
        cursor.execute("SELECT MASTER_GTID_WAIT(%s, 60)", [position])

    strategies = {
        "uncached": "/bench/uncached/",
        "two-pass": "/bench/two-pass/",
        "two-pass-anonymous": "/bench/two-pass/",
        "per-user": "/bench/per-user/",
        "whole-page": "/bench/whole-page/",
    }
    without_cookies = {"two-pass-anonymous", "whole-page"}
    results = {}
    calibration = []
    if not args.page_size:
        args.page_size = calibrate(calibration)
    with override_settings(ROOT_URLCONF="shop.urls_bench", SHOP_PAGE_SIZE=args.page_size,
                           STACK_READ_YOUR_WRITES_SECONDS=0):
        clients = []
        for user in users:
            client = Client()
            client.force_login(user)
            clients.append(client)
        anonymous = Client()

        def fetch(name, i):
            if name in without_cookies:
                anonymous.cookies.clear()
                client = anonymous
            else:
                client = clients[i % len(clients)]
            started = time.perf_counter()
            response = client.get(strategies[name])
            elapsed = time.perf_counter() - started
            assert response.status_code == 200, (name, response.status_code)
            return elapsed

        # Latency: interleaved rounds, after one pass of every user over every strategy (warm caches).
        latencies = {name: [] for name in strategies}
        for name in strategies:
            for i in range(len(clients)):
                fetch(name, i)
        counter = 0
        for _ in range(args.rounds):
            for name in strategies:
                for _ in range(args.per_round):
                    latencies[name].append(fetch(name, counter))
                    counter += 1

        # Memory: every user fetches the page once, starting from an empty cache.
        memory = {}
        for name in strategies:
            cache.clear()
            for i in range(len(clients)):
                fetch(name, i)
            memory[name] = memcached_bytes()
        baseline = memory["uncached"]
        # The same with a tenth of the users: two-pass's share must not grow with them.
        tenth = {}
        for name in ("uncached", "two-pass", "per-user"):
            cache.clear()
            for i in range(max(1, len(clients) // 10)):
                fetch(name, i)
            tenth[name] = memcached_bytes()

    for name, values in latencies.items():
        results[name] = {
            "requests": len(values),
            "rps": len(values) / sum(values),
            "p50_ms": percentile(values, 50) * 1000,
            "p99_ms": percentile(values, 99) * 1000,
            "cache_bytes_over_baseline": memory[name] - baseline,
        }
    ratios = {
        "two_pass_vs_uncached_speedup": results["two-pass"]["rps"] / results["uncached"]["rps"],
        "two_pass_vs_whole_page_slowdown": results["whole-page"]["rps"] / results["two-pass"]["rps"],
        "two_pass_anonymous_vs_whole_page_slowdown":
            results["whole-page"]["rps"] / results["two-pass-anonymous"]["rps"],
        "two_pass_page_bytes_tenth_of_users": tenth["two-pass"] - tenth["uncached"],
        "two_pass_page_bytes_all_users": memory["two-pass"] - baseline,
        "per_user_page_bytes_tenth_of_users": tenth["per-user"] - tenth["uncached"],
        "per_user_page_bytes_all_users": memory["per-user"] - baseline,
    }
    report = render(results, ratios, args, calibration)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "strategies.md").write_text(report)
    (out / "strategies.json").write_text(json.dumps(
        {"page_size": args.page_size, "calibration": calibration, "results": results, "ratios": ratios}, indent=2))
    print(report)
    return 0


def calibrate(calibration: list, target_ms: float = 50.0) -> int:
    """The smallest page size whose uncached render (p50 of 7, after 2 to warm up) costs ``target_ms``."""
    from django.test import Client
    from django.test.utils import override_settings

    client = Client()
    size = 96
    for size in (96, 192, 384, 768):
        with override_settings(ROOT_URLCONF="shop.urls_bench", SHOP_PAGE_SIZE=size):
            timings = []
            for i in range(9):
                started = time.perf_counter()
                assert client.get("/bench/uncached/").status_code == 200
                if i >= 2:
                    timings.append(time.perf_counter() - started)
        p50 = percentile(timings, 50) * 1000
        calibration.append({"page_size": size, "uncached_p50_ms": p50})
        print(f"bench: {size} products: uncached p50 {p50:.1f} ms", file=sys.stderr)
        if p50 >= target_ms:
            break
    return size


def render(results, ratios, args, calibration) -> str:
    uncached_p50 = results["uncached"]["p50_ms"]
    lines = [
        "# Page caching strategies (app benchmark)",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node()} "
        f"({os.cpu_count()} CPUs, Python {platform.python_version()}), in-process WSGI requests, one at a time, "
        f"against a real MariaDB replica and memcached on loopback. Page: the catalog's first {args.page_size} of "
        f"{args.products:,} products; {args.users} logged-in users in turn (whole-page and two-pass-anonymous: "
        "no cookies). "
        f"{args.rounds} interleaved rounds of {args.per_round} requests per strategy.",
        "",
        "| strategy | requests/s | p50 ms | p99 ms | cache memory over baseline, all users |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{r['cache_bytes_over_baseline'] / 1024:.0f} KiB |")
    speedup = ratios["two_pass_vs_uncached_speedup"]
    slowdown = ratios["two_pass_vs_whole_page_slowdown"]
    slowdown_anonymous = ratios["two_pass_anonymous_vs_whole_page_slowdown"]
    tp_tenth, tp_all = ratios["two_pass_page_bytes_tenth_of_users"], ratios["two_pass_page_bytes_all_users"]
    pu_tenth, pu_all = ratios["per_user_page_bytes_tenth_of_users"], ratios["per_user_page_bytes_all_users"]
    lines += [
        "",
        "| target | measured | met |",
        "|---|---:|:---:|",
        f"| uncached render costs at least 50 ms (p50) | {uncached_p50:.1f} ms | {'yes' if uncached_p50 >= 50 else 'no'} |",
        f"| two-pass at least 10x faster than uncached | {speedup:.1f}x | {'yes' if speedup >= 10 else 'no'} |",
        f"| two-pass within 1.5x of whole-page cache_page, both without cookies | {slowdown_anonymous:.2f}x | "
        f"{'yes' if slowdown_anonymous <= 1.5 else 'no'} |",
        f"| the same, two-pass for logged-in users (session, user, their cart) | {slowdown:.2f}x | "
        f"{'yes' if slowdown <= 1.5 else 'no'} |",
        f"| two-pass page cache memory does not grow with users ({args.users // 10} users → {args.users}) | "
        f"{tp_tenth / 1024:.0f} KiB → {tp_all / 1024:.0f} KiB (per-user: {pu_tenth / 1024:.0f} KiB → "
        f"{pu_all / 1024:.0f} KiB) | {'yes' if tp_all <= tp_tenth * 1.2 + 16384 else 'no'} |",
        "",
        "Cache memory is memcached's `bytes` after the users fetched the page, minus the same run without page "
        "caching (the users' sessions, cached users and the data cache, which every strategy needs). Whole-page "
        "requests carry no cookie, so they load no session: their figure is below that baseline. Per-user "
        "caching stores a full copy of the page per user; "
        "two-pass stores one shared first pass. memcached has 1 GB, room for every copy: no strategy is "
        "measured on evictions.",
        "",
        "Page size: " + (", ".join(f"{c['page_size']} products → uncached p50 {c['uncached_p50_ms']:.1f} ms"
                                   for c in calibration) + f"; chosen: {args.page_size}." if calibration else
                         f"{args.page_size} products, as asked (--page-size)."),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
