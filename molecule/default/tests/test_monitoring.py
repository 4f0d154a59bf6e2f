"""Monitoring on mon1: every target scraped, exporters open to mon1 only, the rules' unit tests, alerts that reach
the alert log within two minutes and resolve, every host's journal on mon1, and the console page in Chromium."""

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from stacktest import _python, hosts_of, node, recap, run_playbook, tcp_open, tcp_open_each

testinfra_hosts = ["ansible://monitoring"]
MON = hosts_of("monitoring")[0]
ALERT_LOG = "/var/log/stack-alerts/alerts.jsonl"


def address(name):
    return node(name).check_output("hostname -I").split()[0]


_GET = """
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
    print(r.read().decode())
"""


def prometheus(path):
    """GET on Prometheus's API, from mon1 itself."""
    return _python(node(MON), _GET, f"http://{address(MON)}:9090{path}")


def query(expr):
    import urllib.parse
    return prometheus("/api/v1/query?query=" + urllib.parse.quote(expr))["data"]["result"]


def wait_for(what, check, timeout, every=3):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(every)


def targets():
    return prometheus("/api/v1/targets?state=active")["data"]["activeTargets"]


def test_every_target_of_the_inventory_is_scraped_and_up():
    def all_up():
        ts = targets()
        return ts if ts and all(t["health"] == "up" for t in ts) else None
    try:
        ts = wait_for("every target up", all_up, 90)
    except AssertionError:
        down = [(t["labels"]["job"], t["labels"]["instance"], t["lastError"]) for t in targets() if t["health"] != "up"]
        raise AssertionError(f"targets down: {down}")
    by_job = {}
    for t in ts:
        by_job.setdefault(t["labels"]["job"], set()).add(t["labels"]["instance"])
    assert by_job["node"] >= set(hosts_of("all")) - {"localhost"}
    assert by_job["mysqld"] == set(hosts_of("dbservers"))
    assert by_job["haproxy"] == by_job["haproxy_log"] == by_job["site"] == set(hosts_of("loadbalancers"))
    assert by_job["nginx"] == set(hosts_of("mediaservers"))
    assert by_job["memcached"] == set(hosts_of("cacheservers"))
    roles = {r["metric"]["instance"]: r["metric"]["role"] for r in query("mysql_up")}
    assert roles == {**{h: "replica" for h in hosts_of("db_replicas")}, **{h: "primary" for h in hosts_of("db_primary")}}


def test_the_exporters_report_what_the_alerts_read():
    assert {r["metric"]["instance"] for r in query("mysql_slave_status_slave_io_running == 1")} == set(hosts_of("db_replicas"))
    assert [r["value"][1] for r in query('mysql_global_status_rpl_semi_sync_master_status{role="primary"}')] == ["1"]
    assert {r["metric"]["server"] for r in query('haproxy_server_status{proxy="web",state="UP"} == 1')} == set(hosts_of("webservers"))
    assert {r["metric"]["instance"] for r in query("stack_memcached_up == 1")} == set(hosts_of("cacheservers"))
    assert {r["metric"]["instance"] for r in query("stack_uwsgi_up == 1")} == set(hosts_of("webservers"))
    assert query('probe_ssl_earliest_cert_expiry{job="site"} - time() > 14 * 86400')
    assert query("nginx_up == 1")
    # Every host's root filesystem, which the disk alert and the page read (the lab lets the overlay in).
    disks = {r["metric"]["instance"] for r in query('node_filesystem_avail_bytes{mountpoint="/"}')}
    assert disks >= set(hosts_of("all")) - {"localhost"}


def test_the_probe_is_one_long_running_process_and_the_costly_collector_is_off():
    """The probe of memcached and uWSGI is a service that reads them every 15 s (not an interpreter a timer starts
    each time), its files are fresh, and the node exporter's systemd collector (D-Bus, every unit) is off."""
    for name in hosts_of("webservers")[:1] + hosts_of("cacheservers")[:1]:
        host = node(name)
        # Running between two reads: a oneshot a timer starts would be inactive nearly all the time.
        assert host.service("stack-metrics-probe").is_running, name
        assert int(host.check_output("systemctl show -P MainPID stack-metrics-probe")) > 0, name
        assert not host.file("/etc/systemd/system/stack-metrics-probe.timer").exists, name
        newest = int(host.check_output("find /var/lib/prometheus/node-exporter -name 'stack-*.prom' "
                                       "-printf '%T@\\n' | sort -n | tail -1").split(".")[0])
        age = int(host.check_output("date +%s")) - newest
        assert age <= 35, f"{name}: the probe's newest file is {age} s old"
    assert not query("node_systemd_unit_state"), "the node exporter's systemd collector is on"


def exporter_ports():
    """(host, port) of every exporter Prometheus scrapes on another host, from its own target list."""
    pairs = set()
    for t in targets():
        if t["labels"]["job"] in ("node", "mysqld", "haproxy", "haproxy_log", "nginx"):
            pairs.add((t["labels"]["instance"], int(t["scrapeUrl"].split("/")[2].rsplit(":", 1)[1])))
    return sorted(pairs)


def test_every_exporter_port_is_open_to_the_monitoring_host_only():
    pairs = exporter_ports()
    assert len(pairs) >= len(hosts_of("all")) - 1
    outsider = {h: next(o for o in hosts_of("webservers") + hosts_of("dbservers") if o != h)
                for h in {h for h, _ in pairs}}
    allowed = tcp_open_each((MON, host, port) for host, port in pairs if host != MON)
    refused = tcp_open_each(((outsider[host], host, port) for host, port in pairs), timeout=1.5)
    assert all(allowed.values()), [f"{dst}:{port} refused to {MON}" for (_, dst, port), ok in allowed.items() if not ok]
    assert not any(refused.values()), [f"{dst}:{port} open to {src}" for (src, dst, port), ok in refused.items() if ok]


@pytest.mark.parametrize("port", [9090, 9093, 9115, 9099, 19532])
def test_the_monitoring_host_is_closed_to_the_tiers_except_the_journal_port(port):
    web = hosts_of("webservers")[0]
    assert tcp_open(web, MON, port, timeout=1.5) == (port == 19532)


def test_memcached_is_probed_by_the_monitoring_host():
    assert query('probe_success{job="memcached"} == 1')


def test_the_rules_unit_tests_pass_and_a_broken_rule_is_refused(host):
    out = host.run("stack-check-rules /etc/prometheus/rules/stack.yml /etc/prometheus/rules-tests/stack.test.yml")
    assert out.rc == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr
    broken = host.run("sed 's/expr: mysql_up == 0/expr: mysql_up == 2/' /etc/prometheus/rules/stack.yml"
                      " > /tmp/broken.yml && stack-check-rules /tmp/broken.yml /etc/prometheus/rules-tests/stack.test.yml")
    assert broken.rc != 0 and "MariaDBDown" in broken.stdout + broken.stderr


def alerts(since):
    out = node(MON).run(f"cat {ALERT_LOG}")
    return [json.loads(line) for line in out.stdout.splitlines() if line and json.loads(line)["received"] >= since]


def seen(since, status):
    """(alert, label, value) of each notification with that status since then, for the instance and server labels."""
    return {(a["labels"]["alertname"], k, a["labels"].get(k)) for a in alerts(since)
            if a["receiver"] != "email" and a["status"] == status for k in ("instance", "server")}


def mails(since, status):
    """The subjects of the alert emails with that status since then (the lab's email route ends in the alert log's
    SMTP port, inventories/lab)."""
    return [a["subject"] for a in alerts(since) if a["receiver"] == "email" and a["status"] == status]


def emailed(since, status, expected):
    """Each (alertname, label, host) of expected has an email of that status naming both the alert and the host."""
    subjects = mails(since, status)
    return all(any(alert in s and name in s for s in subjects) for alert, _, name in expected)


def test_a_stopped_replica_web_node_and_memcached_alert_within_two_minutes_and_resolve():
    replica, web, cache = hosts_of("db_replicas")[0], hosts_of("webservers")[-1], hosts_of("cacheservers")[0]
    expected = {("MariaDBDown", "instance", replica), ("HAProxyServerDown", "server", web),
                ("MemcachedDown", "instance", cache)}
    since = time.time()
    stops = [(replica, "mariadb"), (web, "shop"), (cache, "memcached")]
    try:
        for name, service in stops:
            node(name).check_output(f"systemctl stop {service}")

        wait_for("the three alerts firing", lambda: expected <= seen(since, "firing"), 120)
        wait_for("the three alerts emailed", lambda: emailed(since, "firing", expected), 30)
        summaries = [a["annotations"]["summary"] for a in alerts(since) if a["receiver"] != "email" and a["status"] == "firing"]
        for _, _, name in expected:
            assert any(name in s for s in summaries), (name, summaries)
    finally:
        for name, service in stops:
            node(name).run(f"systemctl start {service}")

    wait_for("the three alerts resolved", lambda: expected <= seen(since, "resolved"), 180)
    wait_for("the three resolutions emailed", lambda: emailed(since, "resolved", expected), 60)
    assert all(m["to"] == ["ops@lab.invalid"] for m in alerts(since) if m["receiver"] == "email")


def test_a_line_logged_on_a_web_node_is_read_on_the_monitoring_host():
    token = f"stacktest-{uuid.uuid4()}"
    web = hosts_of("webservers")[-1]
    node(web).check_output(f"logger -t stacktest {token}")
    mon = node(MON)
    wait_for("the line on mon1", lambda: token in mon.run("journalctl -m --no-pager -t stacktest -S -10min").stdout, 60)
    line = mon.check_output(f"journalctl -m --no-pager -o json -t stacktest -S -10min | grep {token}")
    assert json.loads(line)["_HOSTNAME"] == node(web).check_output("hostname")
    # The load balancer's request log is there too.
    assert mon.run("journalctl -m --no-pager -t haproxy -S -30min -n 5").stdout.count("HTTP/") > 0


def test_a_good_uploader_certificate_is_left_alone_and_one_of_another_authority_replaced():
    """The agent checks its key and certificate against the monitoring host's authority with openssl first, and
    takes the crypto modules (a child process each, one on the monitoring host for every agent) only when they are
    not what those modules would make: a certificate signed by another authority (the same key, name and use) is
    replaced by one the monitoring host signs, and the journal flows again."""
    web = hosts_of("webservers")[-1]
    h = node(web)
    tls = "/etc/stack-monitoring/journal-upload"

    def section(out, task):
        return out.split(f"TASK [monitoring_agent : {task}", 1)[1].split("TASK [", 1)[0]

    rc, out = run_playbook("playbooks/monitoring_agents.yml", limit=[web])
    assert rc == 0, out[-3000:]
    assert recap(out)[web] == 0, out[-3000:]
    for task in ("Generate the journal uploader's key", "Sign the journal uploader's certificate"):
        assert f"skipping: [{web}]" in section(out, task), section(out, task)

    forged = h.run(f"openssl req -new -x509 -key {tls}/client.key -subj /CN={web} -addext subjectAltName=DNS:{web} "
                   f"-addext extendedKeyUsage=clientAuth -days 30 -out {tls}/client.crt")
    assert forged.rc == 0, forged.stderr
    assert h.run(f"openssl verify -CAfile {tls}/ca.crt {tls}/client.crt").rc != 0
    rc, out = run_playbook("playbooks/monitoring_agents.yml", limit=[web])
    assert rc == 0, out[-3000:]
    assert f"changed: [{web} -> {MON}" in section(out, "Sign the journal uploader's certificate"), out[-3000:]
    verified = h.run(f"openssl verify -CAfile {tls}/ca.crt -purpose sslclient -verify_hostname {web} {tls}/client.crt")
    assert verified.rc == 0, verified.stdout + verified.stderr
    token = f"stacktest-{uuid.uuid4()}"
    h.check_output(f"logger -t stacktest {token}")
    mon = node(MON)
    wait_for("the line on mon1", lambda: token in mon.run("journalctl -m --no-pager -t stacktest -S -10min").stdout, 60)


def test_received_journals_are_limited_in_size(host):
    conf = host.file("/etc/systemd/journal-remote.conf").content_string
    assert "MaxUse=" in conf and "TrustedCertificateFile=" in conf


def test_the_console_page_in_a_headless_browser():
    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed (scripts/ensure-browser.sh)"
    url = f"http://{address(MON)}:9090/consoles/stack.html"
    out_dir = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
    shot = out_dir / "console.png"
    with tempfile.TemporaryDirectory() as profile:
        common = [chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                  "--window-size=1400,2200"]
        dom = subprocess.run(common + ["--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
        subprocess.run(common + [f"--screenshot={shot}", url], capture_output=True, timeout=120)
    print(f"console page screenshot: {shot}")
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "django-stack: health" in dom
    for name in hosts_of("webservers") + hosts_of("dbservers") + hosts_of("cacheservers"):
        assert f"<td>{name}</td>" in dom, name
    for section in ("web", "database", "cache", "hosts", "site"):
        assert f'id="{section}"' in dom
    assert "DOWN" not in dom.split('id="web"')[1].split('id="backups"')[0]
