"""The canary's verdict (roles/django_web/filter_plugins/django_web.py) on HAProxy's own output: the counters of
`show stat <backend> 4 -1` before and after the watch, and the request log of the window."""

import importlib.util
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[1] / "roles" / "django_web" / "filter_plugins" / "django_web.py"
spec = importlib.util.spec_from_file_location("django_web_filters", PLUGIN)
filters = importlib.util.module_from_spec(spec)
spec.loader.exec_module(filters)

HEADER = ("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,"
          "weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,"
          "rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,"
          "hrsp_other,hanafail,req_rate,req_rate_max,req_tot")


def stat(**servers):
    """show stat output: each server as (status, 2xx, 5xx)."""
    rows = [HEADER]
    for name, (status, ok, errors) in servers.items():
        fields = ["web", name] + [""] * 15 + [status] + [""] * 21 + ["0", str(ok), "0", "0", str(errors), "0"]
        rows.append(",".join(fields + ["", "", "", str(ok + errors)]))
    return "\n".join(rows) + "\n"


def log(server, times, status=200):
    return "".join(f'10.0.0.1:4000 [02/Dec/2026:07:00:00.000] www~ web/{server} 0/0/1/{t}/{t + 1} {status} 900 - - '
                   f'---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"\n' for t in times)


BEFORE = stat(web1=("UP", 1000, 0), web2=("UP", 1000, 0), web3=("UP", 1000, 0))


def verdict(after, logs=(), canary=("web1",)):
    return filters.django_web_canary([BEFORE], [after], list(logs), list(canary), "web")


def test_a_healthy_canary_has_no_regression():
    result = verdict(stat(web1=("UP", 1050, 0), web2=("UP", 1050, 0), web3=("UP", 1050, 0)),
                     [log("web1", [10] * 50), log("web2", [12] * 50), log("web3", [11] * 50)])
    assert result["judged"] and result["regressions"] == []
    assert result["canary"] == {"servers": ["web1"], "requests": 50, "errors": 0, "error_rate": 0.0, "p50_ms": 10}
    assert result["others"]["requests"] == 100 and result["others"]["p50_ms"] == 12  # the upper median


def test_a_canary_answering_500_is_a_regression():
    result = verdict(stat(web1=("UP", 1010, 40), web2=("UP", 1050, 0), web3=("UP", 1050, 0)))
    assert result["regressions"] == ["5xx rate 80.0% (40 of 50) against 0.0% on the other nodes"]


def test_errors_everywhere_are_not_the_canarys():
    result = verdict(stat(web1=("UP", 1045, 5), web2=("UP", 1045, 5), web3=("UP", 1045, 5)))
    assert result["regressions"] == []


def test_a_slow_canary_is_a_regression_but_not_a_little_noise():
    after = stat(web1=("UP", 1050, 0), web2=("UP", 1050, 0), web3=("UP", 1050, 0))
    slow = verdict(after, [log("web1", [300] * 50), log("web2", [20] * 50), log("web3", [20] * 50)])
    assert slow["regressions"] == ["p50 300 ms against 20 ms on the other nodes"]
    # Three times slower, but only by 20 ms: under the slack.
    noise = verdict(after, [log("web1", [30] * 50), log("web2", [10] * 50), log("web3", [10] * 50)])
    assert noise["regressions"] == []


def test_too_little_traffic_is_not_judged():
    result = verdict(stat(web1=("UP", 1003, 2), web2=("UP", 1005, 0), web3=("UP", 1005, 0)))
    assert not result["judged"] and result["regressions"] == []


def test_a_canary_not_up_everywhere_is_a_regression_and_down_servers_are_not_compared():
    result = verdict(stat(web1=("DOWN", 1000, 0), web2=("UP", 1050, 0), web3=("MAINT", 1000, 0)))
    assert result["regressions"] == ["web1 is not UP on every load balancer"]
    assert result["others"]["servers"] == ["web2"]


def test_the_pool_of_one_and_the_servers_that_can_be_drained():
    after = stat(web1=("UP", 1, 0), web2=("DOWN", 1, 0), web3=("UP 1/2", 1, 0))
    assert filters.django_web_others_up([after], ["web1"]) == 1
    assert filters.django_web_others_up([after, stat(web1=("UP", 1, 0))], ["web1"]) == 0
    assert filters.django_web_up(after) == ["web1", "web3"]
