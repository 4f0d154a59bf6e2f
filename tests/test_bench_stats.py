"""The benchmark's figures that need no lab: how the primary scenario reads its write log and the web nodes' log."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stats import (  # noqa: E402
    haproxy_abnormal, logged_failures, slow_requests, summary, time_to_recover, weights, write_outage)

JOURNAL = """\
ERROR django.request: Service Unavailable: /cart/add/
Traceback (most recent call last):
  File "/srv/shop/app/django/db/backends/base/base.py", line 279, in ensure_connection
    self.connect()
MySQLdb.OperationalError: (2003, "Can't connect to server on '172.31.250.119' (115)")

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/srv/shop/app/django/core/handlers/exception.py", line 55, in inner
django.db.utils.OperationalError: (2003, 'no database reachable for alias default: failed none; cooling down 172.31.250.119:3306 (27s left)')
database alias default: 172.31.250.119:3306 unreachable, marked down for 30s
ERROR django.request: Service Unavailable: /cart/add/
Traceback (most recent call last):
django.db.utils.OperationalError: (2003, 'no database reachable for alias default: failed none; cooling down 172.31.250.119:3306 (3s left)')
ERROR django.request: Internal Server Error: /orders/checkout/
Traceback (most recent call last):
  File "/srv/shop/app/orders/views.py", line 21, in checkout
django.db.utils.IntegrityError: (1062, "Duplicate entry '7' for key 'PRIMARY'")
Not Found: /nope/
"""


def test_failed_requests_are_counted_by_status_path_and_final_exception():
    found = logged_failures(JOURNAL)
    assert found == [
        [2, "Service Unavailable /cart/add/: django.db.utils.OperationalError: (2003, 'no database reachable for "
            "alias default: failed none; cooling down 172.31.250.119:3306 (Ns left)')"],
        [1, "Internal Server Error /orders/checkout/: django.db.utils.IntegrityError: (1062, \"Duplicate entry "
            "'7' for key 'PRIMARY'\")"],
        [1, "Not Found /nope/: (no traceback)"],
    ]


def test_an_exception_logged_outside_a_request_is_not_counted():
    assert logged_failures("django.db.utils.OperationalError: (2003, 'x')\n") == []


def test_the_write_outage_runs_from_the_first_failure_to_the_first_success_after_it():
    records = [
        [9.0, "add", 302, 0], [9.1, "checkout", 302, 41],
        [10.2, "checkout", 302, 42],  # in flight when the primary stopped: not the end of the outage
        [10.5, "add", 503, 0], [11.0, "add", 503, 0],
        [40.0, "add", 302, 0], [40.1, "checkout", 500, 0], [40.5, "add", 302, 0], [40.6, "checkout", 302, 43],
    ]
    outage = write_outage(records, stopped_at=10.0)
    assert outage["first_failure_s"] == 0.5
    assert outage["resumed_s"] == 30.0
    assert outage["failures_after_resuming"] == {"checkout 500": 1}


def test_no_failed_write_means_no_outage():
    assert write_outage([[11.0, "add", 302, 0]], stopped_at=10.0)["resumed_s"] is None


def test_summary_counts_failures_and_leaves_them_out_of_latency():
    records = [[0.0, 0.010, 200, 0, 0], [0.1, 0.020, 200, 0, 0], [0.2, 5.0, 0, 0, 0], [0.3, 0.030, 503, 0, 0]]
    figures = summary(records)
    assert figures["requests"] == 4
    assert figures["failed"] == 2
    assert figures["max_ms"] == 20.0


def test_recovery_is_when_the_rolling_median_comes_back_and_stays():
    before = [[t / 10, 0.010, 200, 0, 0] for t in range(0, 100)]
    slow = [[10 + t / 10, 0.500, 200, 0, 0] for t in range(0, 30)]
    after = [[13 + t / 10, 0.010, 200, 0, 0] for t in range(0, 50)]
    recovered = time_to_recover(before + slow + after, 10.0, 10.0)
    assert recovered is not None and 2.5 <= recovered <= 3.5
    assert time_to_recover(before + slow, 10.0, 10.0) is None


def test_the_report_names_the_containers_that_weigh_more():
    shares = {"lb1": 4096, "web1": 4096, "web2": 4096, "db1": 1024, "cache1": 1024}
    assert weights({"cpu_shares": shares}) == " (lb1, web1, web2 with 4× the others' CPU weight)"
    assert weights({"cpu_shares": {"lb1": 1024, "db1": 1024}}) == ""
    assert weights({}) == ""


def test_slow_requests_come_from_uwsgis_request_log():
    journal = "\n".join([
        "[pid: 3856|app: 0|req: 1/1] 172.31.240.9 () {46 vars in 900 bytes} [Wed Nov 25 09:40:00 2026] "
        "POST /orders/checkout/ => generated 0 bytes in 10234 msecs (HTTP/1.1 302) 7 headers in 400 bytes "
        "(1 switches on core 0)",
        "[pid: 3856|app: 0|req: 2/2] 172.31.240.9 () {46 vars in 900 bytes} [Wed Nov 25 09:40:01 2026] "
        "POST /cart/add/ => generated 0 bytes in 25 msecs (HTTP/1.1 302) 7 headers in 400 bytes (1 switches on core 0)",
        "[pid: 3857|app: 0|req: 1/3] 172.31.240.9 () {46 vars in 900 bytes} [Wed Nov 25 09:40:02 2026] "
        "GET /c/cat-001/ => generated 9000 bytes in 9000 msecs (HTTP/1.1 200) 7 headers in 400 bytes (1 switches on core 0)",
        "WSGI app 0 (mountpoint='') ready in 1 seconds on interpreter 0xa84590 pid: 3858 (default app)",
    ])
    assert slow_requests(journal, "POST", 5000) == ["10234 ms 302 /orders/checkout/"]
    assert slow_requests(journal, "GET", 5000) == ["9000 ms 200 /c/cat-001/"]


def test_abnormal_requests_come_from_haproxys_request_log():
    journal = "\n".join([
        '127.0.0.1:27120 [25/Nov/2026:09:36:33.899] www~ web/web1 0/0/0/5/5 200 464 - - ---- 1/1/0/0/0 0/0 '
        '"GET /healthz HTTP/1.1"',
        '127.0.0.1:27121 [25/Nov/2026:09:36:34.000] www~ web/web2 0/0/0/-1/8 502 204 - - SH-- 2/2/1/1/0 0/0 '
        '"POST /orders/checkout/ HTTP/1.1"',
        '127.0.0.1:27122 [25/Nov/2026:09:36:35.000] www~ web/web1 0/0/0/9/9 302 300 - - ---- 2/2/1/1/0 0/0 '
        '"POST /cart/add/ HTTP/1.1"',
    ])
    assert haproxy_abnormal(journal, "POST") == ["SH-- 502 web/web2 0/0/0/-1/8 /orders/checkout/"]
    assert haproxy_abnormal(journal, "GET") == []


WRK = """\
Running 4s test @ https://127.0.0.1/static/shop/site.0123456789ab.css
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.33us    1.02ms  21.40ms   93.12%
    Req/Sec    10.12k     1.01k   12.30k    70.00%
  Latency Distribution
     50%  540.00us
     75%  820.00us
     90%    1.45ms
     99%    5.20ms
  80564 requests in 4.00s, 120.33MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  20141.00
Transfer/sec:     30.08MB
"""


def test_wrk_reports_are_read_as_summaries():
    from bench.lab import parse_wrk
    found = parse_wrk(WRK)
    assert found["requests"] == 80564 and found["seconds"] == 4.0
    assert round(found["rps"]) == 20141
    assert found["failed"] == 7
    assert (found["p50_ms"], found["p90_ms"], found["p99_ms"]) == (0.54, 1.45, 5.2)
