"""The whole stack through the load balancer, as a user sees it (run from lb1 against its own HTTPS port)."""

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml
import stacktest
from stacktest import _python, container, hosts_of, load_failures, node, run_playbook, tcp_open, under_load

LB = "https://127.0.0.1"

def browse(*steps, src=None):
    """Run steps (method, path, form or None, headers) in one browser session on the load balancer."""
    return stacktest.browse(*steps, src=src, base=LB)


def load_user():
    """The customer of stacktest.under_load's load."""
    manage("shell", "-c", "from django.contrib.auth import get_user_model; U = get_user_model(); "
           "U.objects.filter(username='load').exists() or U.objects.create_user('load', password='load-long-password')")


def manage(*args):
    """Run a manage.py command on the first web node, as the app runs it."""
    web = node(hosts_of("webservers")[0])
    out = web.run(
        "cd /srv/shop/current && runuser -u shop -- env STACK_CONFIG=/etc/shop/config.json "
        "venv/bin/python manage.py " + " ".join(["%s"] * len(args)), *args)
    assert out.rc == 0, out.stderr
    return out.stdout


def test_pages_with_products_and_a_cached_first_pass():
    home, category, again = browse(("GET", "/", None), ("GET", "/c/cat-002/", None), ("GET", "/c/cat-002/", None))
    assert home["status"] == 200 and home["body"].count('class="card"') >= 10
    assert category["status"] == 200 and 'class="card"' in category["body"]
    # The second request is served from the cached first pass.
    assert again["headers"]["x-first-pass"] == "hit"
    assert "max-age=31536000" in home["headers"]["strict-transport-security"]


def test_a_memcached_restart_costs_no_cached_first_pass():
    """Every cache node restarts while the web nodes' threads hold connections to it from before: pages are cached
    again at once (before: each thread's first command on its old connection marked the node dead for dead_retry,
    30 s, and pages whose keys live there were misses on every request meanwhile)."""
    pages = [f"/c/cat-{i:03d}/" for i in range(1, 10)]
    warm = browse(*[("GET", page, None) for page in pages * 4])  # many threads of every web node get connections
    assert all(r["status"] == 200 for r in warm)
    for cache in hosts_of("cacheservers"):
        node(cache).check_output("systemctl restart memcached")
    time.sleep(2)  # a thread that tried during the restart itself marked it dead: the process probes it back
    seen = {page: [r["headers"].get("x-first-pass") for r in browse(*[("GET", page, None)] * 3)] for page in pages}
    assert all(passes[1:] == ["hit", "hit"] for passes in seen.values()), seen


def test_pages_come_compressed_through_the_load_balancer():
    """Django compresses the page (BREACH-padded), HAProxy passes it on as it is; a client without gzip gets it
    plain."""
    plain, packed = browse(("GET", "/", None), ("GET", "/", None, {"Accept-Encoding": "gzip"}))
    assert plain["status"] == packed["status"] == 200
    assert "content-encoding" not in plain["headers"]
    assert packed["headers"]["content-encoding"] == "gzip" and "Accept-Encoding" in packed["headers"]["vary"]
    assert packed["body"].count('class="card"') == plain["body"].count('class="card"') >= 10
    assert packed["size"] * 5 <= plain["size"], (packed["size"], plain["size"])


def test_http_is_redirected_to_https():
    result = _python(node(hosts_of("loadbalancers")[0]), """
import http.client, json
c = http.client.HTTPConnection("127.0.0.1", 80, timeout=5); c.request("GET", "/c/cat-001/", headers={"Host": "localhost"})
r = c.getresponse(); print(json.dumps({"status": r.status, "location": r.getheader("Location")}))
""")
    assert result["status"] == 301 and result["location"].startswith("https://localhost")


def test_static_files_come_gzipped_with_far_future_headers():
    (page,) = browse(("GET", "/", None))
    css = page["body"].split('href="/static/')[1].split('"')[0]
    (static,) = browse(("GET", f"/static/{css}", None, {"Accept-Encoding": "gzip"}))
    assert static["status"] == 200
    assert static["headers"]["content-encoding"] == "gzip"
    assert "immutable" in static["headers"]["cache-control"] and "expires" in static["headers"]
    # Every cache on the way keys on Accept-Encoding: a client that takes no gzip gets the plain file, also
    # from HAProxy's cache that the first request filled.
    assert static["headers"]["vary"] == "Accept-Encoding"
    plain, again = browse(("GET", f"/static/{css}", None), ("GET", f"/static/{css}", None, {"Accept-Encoding": "gzip"}))
    assert plain["status"] == 200 and "content-encoding" not in plain["headers"] and "color" in plain["body"]
    assert again["headers"]["content-encoding"] == "gzip"
    # HAProxy keeps them in its cache (served without a web node).
    cache = node(hosts_of("loadbalancers")[0]).run("echo 'show cache' | socat - /run/haproxy/admin.sock").stdout
    assert "static (shctx" in cache and " size:" in cache, cache


def test_an_upload_by_the_app_lands_on_the_media_server_and_is_served_by_the_lb():
    name = manage("shell", "-c", "from django.core.files.base import ContentFile; "
                  "from django.core.files.storage import default_storage; "
                  "print(default_storage.save('tests/e2e.txt', ContentFile(b'stored by the app')))")
    name = name.strip().splitlines()[-1]  # Django's shell may first say what it imported
    media = node(hosts_of("mediaservers")[0])
    assert media.file(f"/srv/media/{name}").content == b"stored by the app"
    for web in hosts_of("webservers"):
        assert not node(web).file(f"/srv/media/{name}").exists
    (served,) = browse(("GET", f"/media/{name}", None))
    assert served["status"] == 200 and served["body"] == "stored by the app"
    assert "max-age" in served["headers"]["cache-control"]


def test_log_in_and_add_to_the_cart_through_the_two_pass_page():
    manage("shell", "-c", "from django.contrib.auth import get_user_model; U = get_user_model(); "
           "U.objects.filter(username='e2e').exists() or U.objects.create_user('e2e', password='e2e-long-password')")
    steps = browse(
        ("GET", "/login/", None),
        ("POST", "/login/", {"username": "e2e", "password": "e2e-long-password"}),
        ("GET", "/c/cat-001/", None),
        ("POST", "/cart/add/", {"product": "1", "next": "/c/cat-001/"}),
        ("GET", "/c/cat-001/", None),
    )
    login, before, added, after = steps[1], steps[2], steps[3], steps[4]
    assert login["status"] == 302
    assert '<strong class="username">e2e</strong>' in before["body"]
    assert '<span id="cart-count">0</span>' in before["body"]
    assert added["status"] == 302
    assert '<span id="cart-count">1</span>' in after["body"]


def test_a_request_body_over_the_limit_gets_413():
    result = _python(node(hosts_of("loadbalancers")[0]), """
import http.client, json, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
c = http.client.HTTPSConnection("127.0.0.1", 443, context=ctx, timeout=10)
c.putrequest("POST", "/cart/add/"); c.putheader("Content-Length", str(20 * 1024 * 1024)); c.endheaders()
try:
    c.send(b"x" * (256 * 1024))
except OSError:
    pass
r = c.getresponse(); print(json.dumps({"status": r.status, "body": r.read1(4096).decode(errors="replace")}))
""")
    assert result["status"] == 413 and "Too large" in result["body"]


def test_haproxy_reports_every_web_node_up():
    lb = node(hosts_of("loadbalancers")[0])
    stat = lb.run("echo 'show stat' | socat - /run/haproxy/admin.sock").stdout
    states = {line.split(",")[1]: line.split(",")[17] for line in stat.splitlines() if line.startswith("web,")}
    assert {name: states.get(name) for name in hosts_of("webservers")} == {n: "UP" for n in hosts_of("webservers")}


@pytest.mark.parametrize("src,allowed", [("loadbalancers", True), ("mediaservers", False), ("db_primary", False)])
def test_uwsgi_port_is_open_only_to_the_load_balancers(src, allowed):
    web = hosts_of("webservers")[0]
    assert tcp_open(hosts_of(src)[0], web, 8000) is allowed


def _sequential_requests(count, pause):
    return _python(node(hosts_of("loadbalancers")[0]), f"""
import json, ssl, time, urllib.request, urllib.error
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
codes = []
for i in range({count}):
    try:
        with urllib.request.urlopen("{LB}/?page=" + str(i % 5 + 1), context=ctx, timeout=10) as r:
            codes.append(r.status)
    except urllib.error.HTTPError as e:
        codes.append(e.code)
    except OSError as e:
        codes.append(str(e))
    time.sleep({pause})
print(json.dumps({{"codes": codes}}))
""")["codes"]


def test_admin_only_from_the_admin_networks():
    (local,) = browse(("GET", "/admin/", None))
    assert local["status"] == 302  # to the admin's login page: lb1's loopback is an admin network
    lb = hosts_of("loadbalancers")[0]
    result = _python(node(hosts_of("webservers")[0]), f"""
import json, ssl, urllib.request, urllib.error
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
try:
    status = urllib.request.urlopen("https://{lb}/admin/", context=ctx, timeout=5).status
except urllib.error.HTTPError as e:
    status = e.code
print(json.dumps({{"status": status}}))
""")
    assert result["status"] == 403


def test_stats_and_metrics_only_on_the_load_balancers_loopback():
    lb = hosts_of("loadbalancers")[0]
    metrics = node(lb).run("python3 -c %s", "import urllib.request; print(urllib.request.urlopen("
                           "'http://127.0.0.1:8404/metrics').read().decode())")
    assert "haproxy_backend_status" in metrics.stdout
    assert not tcp_open(hosts_of("webservers")[0], lb, 8404)


def test_a_slow_client_is_cut_off_by_the_load_balancer():
    # Headers that never finish: HAProxy answers 408 after its http-request timeout; no uWSGI worker waits.
    result = _python(node(hosts_of("loadbalancers")[0]), """
import json, socket, time
s = socket.create_connection(("127.0.0.1", 80), timeout=30)
s.sendall(b"GET / HTTP/1.1\\r\\nHost: localhost\\r\\n")
started = time.monotonic()
reply = s.recv(200)
print(json.dumps({"after": time.monotonic() - started, "reply": reply.decode(errors="replace")}))
""")
    assert result["reply"].startswith("HTTP/1.1 408"), result
    assert result["after"] < 20


def test_health_checks_stay_out_of_the_request_log():
    web = node(hosts_of("webservers")[0])
    log = web.run("journalctl -u shop --no-pager -o cat").stdout
    assert "GET /" in log, "no request in the log at all"  # the pages fetched above are there
    assert "GET /healthz" not in log  # HAProxy's checks, every 2 s since the start, are not


_KEEP_ALIVE = """
import http.client, json, ssl, sys, threading
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
statuses = []
def browser():
    connection = http.client.HTTPSConnection("127.0.0.1", 443, context=context, timeout=30)
    for _ in range(int(sys.argv[2])):
        connection.request("GET", "/c/cat-001/", headers={"Host": "localhost"})
        response = connection.getresponse()
        response.read()
        statuses.append(response.status)
threads = [threading.Thread(target=browser) for _ in range(int(sys.argv[1]))]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps(statuses))
"""


def _web_backend_stats(lb):
    out = lb.run("echo 'show stat' | socat - /run/haproxy/admin.sock").stdout.lstrip("# ")
    lines = out.splitlines()
    header = lines[0].split(",")
    return {row[1]: dict(zip(header, row)) for row in (line.split(",") for line in lines[1:] if line)
            if row[0] == "web"}


def test_the_load_balancer_never_reuses_a_web_nodes_closed_connection():
    # uWSGI closes every connection after its answer. Browsers on keep-alive connections to HAProxy, 8 at
    # once, must not make HAProxy send a request on a server connection uWSGI already closed: a GET would be
    # retried ("eresp" and "reuse" count those), a POST lost. Without http-server-close about one in four
    # requests here went on such a connection.
    lb = node(hosts_of("loadbalancers")[0])
    before = _web_backend_stats(lb)["BACKEND"]
    statuses = _python(lb, _KEEP_ALIVE, "8", "50")
    after = _web_backend_stats(lb)["BACKEND"]
    assert statuses == [200] * 400
    assert int(after["reuse"]) == int(before["reuse"])
    assert int(after["eresp"]) == int(before["eresp"])


def test_haproxy_logs_each_request_to_the_journal():
    lb = node(hosts_of("loadbalancers")[0])
    browse(("GET", "/c/cat-003/?logged=haproxy", None))
    log = lb.run("journalctl -t haproxy --no-pager -o cat").stdout
    # Client, frontend, backend/server, timings, status, termination state, the request line.
    assert [line for line in log.splitlines() if " www~ web/" in line and "GET /c/cat-003/?logged=haproxy" in line]


def test_static_files_from_haproxys_cache_are_left_out_of_the_request_log():
    """A hashed static file HAProxy serves from its cache is not logged (thousands a second at a page load's
    bursts, each a line for the journal, its upload and mtail); the one a web node served is, as pages are."""
    lb = node(hosts_of("loadbalancers")[0])
    (page,) = browse(("GET", "/", None))
    css = page["body"].split('href="/static/')[1].split('"')[0]
    tag = uuid.uuid4().hex  # a new query: a new key in HAProxy's cache, so the first request misses it
    first, second, third = browse(*[("GET", f"/static/{css}?log={tag}", None)] * 3)
    assert first["status"] == second["status"] == third["status"] == 200
    time.sleep(1)
    lines = [line for line in lb.run("journalctl -t haproxy --no-pager -o cat").stdout.splitlines() if tag in line]
    assert len(lines) == 1 and "<CACHE>" not in lines[0] and " www~ web/" in lines[0], lines


def _during(action, count=60, pause=0.05):
    """Sequential requests through the load balancer while action() runs; their status codes."""
    import threading

    result = {}
    thread = threading.Thread(target=lambda: result.update(codes=_sequential_requests(count, pause)))
    thread.start()
    time.sleep(0.5)
    action()
    thread.join(120)
    return result["codes"]


def test_reloads_drop_no_request():
    def reload_everything():
        for web in hosts_of("webservers"):
            assert node(web).run("systemctl reload shop").rc == 0
            time.sleep(0.5)
        assert node(hosts_of("loadbalancers")[0]).run("systemctl reload haproxy").rc == 0

    codes = _during(reload_everything)
    assert codes == [200] * len(codes), codes


def test_jobs_are_scheduled_on_exactly_one_web_node():
    jobs = ("refresh_cache", "clearsessions")
    states = {web: [node(web).run("systemctl is-active shop-job@%s.timer", job).stdout.strip() for job in jobs]
              for web in hosts_of("webservers")}
    leaders = [web for web, state in states.items() if state == ["active", "active"]]
    assert len(leaders) == 1, states
    assert all(state == ["inactive", "inactive"] for web, state in states.items() if web not in leaders), states
    # The job itself works: run it once now.
    assert node(leaders[0]).run("systemctl start shop-job@refresh_cache.service").rc == 0


def _started_at(host):
    """When uWSGI's master started, on the clock every container shares (CLOCK_MONOTONIC, seconds)."""
    return int(node(host).run("systemctl show -p ExecMainStartTimestampMonotonic --value shop").stdout) / 1e6


def test_a_uwsgi_restart_rolls_one_web_node_at_a_time():
    """A change that needs uWSGI restarted (here an option of uwsgi.ini) restarts the web nodes one at a time,
    each drained first and back UP before the next: no request fails meanwhile."""
    webs = hosts_of("webservers")
    load_user()
    for harakiri in (31, 30):  # the change, then back to the lab's value
        pids = {web: _uwsgi_pid(web) for web in webs}

        def change():
            rc, out = run_playbook("playbooks/web.yml", extra_vars={"django_web_harakiri": harakiri})
            assert rc == 0, out[-3000:]

        answers = under_load(change, f"rolling-restart-{harakiri}")
        assert len(answers) > 20 and {kind for _, kind, _ in answers} == {"get", "login", "post"}, answers[:5]
        assert not load_failures(answers), load_failures(answers)[:20]
        assert all(_uwsgi_pid(web) != pids[web] for web in webs), "every node restarts"
        starts = sorted(_started_at(web) for web in webs)
        gaps = [later - earlier for earlier, later in zip(starts, starts[1:])]
        # The next node restarts only once the previous one is UP again (health checks: rise 2 x inter).
        assert all(gap >= 2.0 for gap in gaps), gaps


def test_the_leader_stays_the_same_node_with_limit():
    """web.yml limited to another web node leaves the jobs where they are: on the inventory's first web node."""
    webs = hosts_of("webservers")
    rc, out = run_playbook("playbooks/web.yml", limit=[webs[-1]])
    assert rc == 0, out[-3000:]
    jobs = ("refresh_cache", "clearsessions")
    states = {web: [node(web).run("systemctl is-active shop-job@%s.timer", job).stdout.strip() for job in jobs]
              for web in webs}
    assert states[webs[0]] == ["active", "active"], states
    assert all(states[web] == ["inactive", "inactive"] for web in webs[1:]), states
    # The job runs under its lock on the primary.
    assert "run_job" in node(webs[0]).file("/etc/systemd/system/shop-job@.service").content_string


def test_uwsgi_stats_server_answers_on_loopback():
    web = node(hosts_of("webservers")[0])
    out = web.run("python3 -c %s", "import json, urllib.request; s = json.load(urllib.request.urlopen("
                  "'http://127.0.0.1:9191')); print(len(s['workers']), s['workers'][0]['cores'][0] is not None)")
    workers, _ = out.stdout.split()
    assert int(workers) >= 2


def _docker(*args):
    subprocess.run(["docker", *args], check=True, capture_output=True)


def test_stopping_a_replica_keeps_pages_up():
    replica = hosts_of("db_replicas")[0]
    _docker("stop", "-t", "20", container(replica))
    try:
        codes = _sequential_requests(20, 0.05)
    finally:
        _docker("start", container(replica))
    assert codes == [200] * 20, codes


def test_stopping_a_web_node_loses_no_request():
    victim = hosts_of("webservers")[-1]
    lb = node(hosts_of("loadbalancers")[0])
    # The container stops while the requests below run.
    proc = subprocess.Popen(["docker", "stop", "-t", "20", container(victim)])
    try:
        codes = _sequential_requests(60, 0.05)
    finally:
        proc.wait()
        _docker("start", container(victim))
    assert codes == [200] * 60, codes
    # Back in the pool once it answers its health checks again.
    for _ in range(60):
        stat = lb.run("echo 'show stat' | socat - /run/haproxy/admin.sock").stdout
        if any(line.startswith(f"web,{victim},") and ",UP," in line for line in stat.splitlines()):
            break
        time.sleep(1)
    else:
        pytest.fail(f"{victim} did not come back UP")


# Runs last: the topology grows by a web node, added the way README says (one inventory line, a re-run).
WITH_WEB3 = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "with-web3.yml"


def _uwsgi_pid(host):
    return node(host).run("systemctl show -p MainPID --value shop").stdout.strip()


def _current_release(host):
    return node(host).run("readlink /srv/shop/current").stdout.strip()


def test_zz_adding_a_web_node_is_one_inventory_line_and_a_rerun():
    webs = hosts_of("webservers")
    assert "web3" not in webs
    pids = {web: _uwsgi_pid(web) for web in webs}
    # Four older releases on the first node (an hour apart): the re-run keeps the live one and the two newest.
    first = node(webs[0])
    for age in range(1, 5):
        planted = first.run("install -d -o shop -g shop /srv/shop/releases/old-%s && touch -d '%s hours ago' "
                            "/srv/shop/releases/old-%s", str(age), str(age), str(age))
        assert planted.rc == 0, planted.stderr
    WITH_WEB3.write_text(yaml.safe_dump({"lab": {"children": {"webservers": {"hosts": {"web3": None}}}}}))
    rc, out = run_playbook("site.yml", WITH_WEB3)
    assert rc == 0, out[-3000:]
    # The same release as the others, installed from the same wheels.
    assert _current_release("web3") == _current_release(webs[0])
    assert node("web3").service("shop").is_running
    # Nothing else restarted: the other web nodes' uWSGI masters are the same processes.
    assert {web: _uwsgi_pid(web) for web in webs} == pids
    # The load balancer checks it and sends it traffic; the database and the cache let it in (its /healthz
    # answers "ok" only when both do).
    lb = node(hosts_of("loadbalancers")[0])
    for _ in range(30):
        stat = lb.run("echo 'show stat' | socat - /run/haproxy/admin.sock").stdout
        if any(line.startswith("web,web3,") and ",UP," in line for line in stat.splitlines()):
            break
        time.sleep(1)
    else:
        pytest.fail("web3 never came UP in HAProxy")
    health = node("web3").run("python3 -c %s", "import urllib.request; print(urllib.request.urlopen("
                              "urllib.request.Request('http://127.0.0.1:8000/healthz', headers={'Host': 'localhost'})"
                              ").read().decode())")
    assert json.loads(health.stdout)["status"] == "ok", health.stdout
    assert _sequential_requests(12, 0) == [200] * 12
    # Old releases were pruned to django_web_releases_kept (3), newest first, the live one kept.
    left = set(first.run("ls /srv/shop/releases").stdout.split())
    assert left == {_current_release(webs[0]).rsplit("/", 1)[-1], "old-1", "old-2"}, left
    served = node("web3").run("journalctl -u shop --no-pager -o cat | grep -c 'GET /?page='").stdout.strip()
    assert int(served or 0) > 0, "HAProxy sent web3 no request"
