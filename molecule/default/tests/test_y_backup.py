"""Backups proven by restores (roles/backup, playbooks/restore-database.yml, playbooks/restore-media.yml).

Orders are written on the primary; a full backup is taken on the replica; more orders are written and the time T
noted; more again; then a disaster: the orders table is dropped and a media file deleted. A restore to T brings
back exactly the orders acknowledged before T, the replicas are seeded again and replicate from the restored
primary, and the media file comes back. Retention keeps what its policy says; the drill passes on a good backup
and fails on a corrupted one. Runs after test_web.py and before the deploys (test_zz_deploy.py).
"""

import datetime
import json
import os
import time
from pathlib import Path

import pytest
from stacktest import hosts_of, node, recap, run_playbook, tcp_open, tcp_open_each

BACKUP = hosts_of("backupservers")[0]
PRIMARY = hosts_of("db_primary")[0]
REPLICAS = hosts_of("db_replicas")
SOURCE = REPLICAS[-1]
MEDIA = hosts_of("mediaservers")[0]
REPO = "/srv/backup/restic"
RESTIC = "RESTIC_PASSWORD_FILE=/etc/stack-backup/repository.password restic --no-cache"
# The inventory as it is: test_web.py's last test added web3 to the web tier in an inventory file of its own. A
# restore runs the database tier's playbook, whose grants and firewall follow the inventory it is given.
WITH_WEB3 = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "with-web3.yml"


def playbook(path, **extra_vars):
    return run_playbook(path, *([WITH_WEB3] if WITH_WEB3.exists() else []), extra_vars=extra_vars)


# Order totals that mark this module's rows: written before the backup, after it and before T, after T.
BEFORE_BACKUP = [9101, 9102, 9103]
BEFORE_T = [9104, 9105, 9106]
AFTER_T = [9107, 9108, 9109]


def sql(host, query):
    out = node(host).run("mariadb -N -B -e %s", query)
    assert out.rc == 0, out.stderr
    return [line.split("\t") for line in out.stdout.splitlines()]


def marked_orders(host):
    rows = sql(host, "SELECT CAST(total AS UNSIGNED) FROM shop.orders_order WHERE total BETWEEN 9100 AND 9199 "
                     "ORDER BY total")
    return [int(r[0]) for r in rows]


def write_orders(totals):
    """Each INSERT is its own transaction: it returns once committed (acknowledged)."""
    user = sql(PRIMARY, "SELECT MIN(id) FROM shop.auth_user")[0][0]
    for total in totals:
        sql(PRIMARY, f"INSERT INTO shop.orders_order (created, total, user_id) VALUES (NOW(6), {total}, {user})")


def unit_run(host, unit):
    """Start a oneshot unit and wait for it: (succeeded, its journal since the start)."""
    h = node(host)
    since = h.run("date '+%Y-%m-%d %H:%M:%S'").stdout.strip()
    ok = h.run(f"systemctl start {unit}").rc == 0
    return ok, h.run(f"journalctl -u {unit} --since %s --no-pager -o cat", since).stdout


def snapshots(repo, *args):
    out = node(BACKUP).run(f"{RESTIC} -r {REPO}/{repo} snapshots --json --no-lock " + " ".join(args))
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout or "[]") or []


def metrics():
    text = node(BACKUP).file("/var/lib/prometheus/node-exporter/django-stack-backup.prom").content_string
    return dict(line.rsplit(" ", 1) for line in text.splitlines() if line)


def replica_status(host):
    out = node(host).run("mariadb -e 'SHOW SLAVE STATUS\\G'").stdout
    pairs = (line.split(":", 1) for line in out.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def test_the_backup_host_accepts_only_the_hosts_it_backs_up():
    port = 8100
    allowed = tcp_open_each((client, BACKUP, port) for client in hosts_of("dbservers") + hosts_of("mediaservers"))
    refused = tcp_open_each(((other, BACKUP, port) for other in
                             hosts_of("webservers") + hosts_of("loadbalancers") + hosts_of("cacheservers")), timeout=1.5)
    assert all(allowed.values()), [src for (src, _, _), ok in allowed.items() if not ok]
    assert not any(refused.values()), [src for (src, _, _), ok in refused.items() if ok]
    # It streams the primary's binary logs: the primary lets it in.
    assert tcp_open(BACKUP, PRIMARY, 3306)


def test_the_binary_logs_stream_from_the_primary_as_they_are_written():
    assert node(BACKUP).service("stack-backup-binlog").is_running
    write_orders([9199])
    marker = "9199.00"
    # The row is in the spool (row-based events hold the values) within seconds of its commit.
    spool = node(BACKUP).run(
        "for i in $(seq 20); do mariadb-binlog --base64-output=decode-rows -v /var/lib/stack-backup/binlog/%s/*/*.[0-9]* "
        "2>/dev/null | grep -q %s && exit 0; sleep 0.5; done; exit 1", PRIMARY, marker)
    assert spool.rc == 0, "the order never reached the backup host's spool"
    sql(PRIMARY, "DELETE FROM shop.orders_order WHERE total = 9199")


def test_the_stream_follows_the_writable_server():
    """A promotion makes another server the writable one: the stream follows it (a timeline of its own), and comes
    back when the first one is the primary again. Only read_only is switched: nothing is written meanwhile."""
    other = REPLICAS[0]
    backup = node(BACKUP)
    since = backup.run("date '+%Y-%m-%d %H:%M:%S'").stdout.strip()
    journal = f"journalctl -u stack-backup-binlog --since '{since}' --no-pager -o cat"

    def streams_from(source):
        """Whether the stream says, within 30 s, that it streams from this server."""
        return backup.run(f"for i in $(seq 60); do {journal} | grep -q 'streaming the binary logs of {source} ' "
                          "&& exit 0; sleep 0.5; done; exit 1").rc == 0
    try:
        sql(PRIMARY, "SET GLOBAL read_only = ON")
        sql(other, "SET GLOBAL read_only = OFF")
        assert streams_from(other), backup.run(journal).stdout
        assert backup.run(f"ls /var/lib/stack-backup/binlog/{other}/").stdout.strip()
    finally:
        sql(other, "SET GLOBAL read_only = ON")
        sql(PRIMARY, "SET GLOBAL read_only = OFF")
    assert streams_from(PRIMARY), backup.run(journal).stdout
    # The primary's own history goes on in the timeline it had: no new one for a file that continues.
    assert f"{PRIMARY}: its binary logs no longer continue" not in backup.run(journal).stdout


def test_a_client_cannot_delete_a_backup():
    """The REST server is append-only: a compromised client cannot take the backups with it."""
    ok, _ = unit_run(MEDIA, "stack-backup-media.service")
    assert ok
    snap = snapshots("media", "--host", MEDIA)[-1]["id"]
    out = node(MEDIA).run(
        "cd /tmp && python3 -c %s", "import json, os, subprocess\n"
        "c = json.load(open('/etc/stack-backup/config.json'))\n"
        "env = dict(os.environ, RESTIC_REPOSITORY=c['repository_base'] + '/media', RESTIC_PASSWORD_FILE="
        "c['password_file'])\n"
        f"raise SystemExit(subprocess.run(['restic', '--no-cache', '--cacert', c['cacert'], 'forget', '{snap}'], "
        "env=env).returncode)")
    # The server refused the removal and restic says so (its exit code may stay 0), and the backup is still there.
    assert "unable to remove" in out.stderr + out.stdout, out.stderr
    assert any(s["id"] == snap for s in snapshots("media", "--host", MEDIA))


@pytest.fixture(scope="module")
def disaster():
    """Orders before the backup, the backup, orders before T, T, orders after T; then the disaster."""
    sql(PRIMARY, "DELETE FROM shop.orders_order WHERE total BETWEEN 9100 AND 9199")
    write_orders(BEFORE_BACKUP)
    # The replica has the orders before its backup pauses it.
    for _ in range(50):
        if marked_orders(SOURCE) == BEFORE_BACKUP:
            break
        time.sleep(0.2)
    ok, journal = unit_run(SOURCE, "stack-backup-database.service")
    assert ok, journal
    backup = snapshots("database", "--tag", "database")[-1]
    write_orders(BEFORE_T)
    time.sleep(1.1)
    # The servers' local time (the restore reads it so).
    restore_to = node(BACKUP).run("date '+%Y-%m-%d %H:%M:%S'").stdout.strip()
    time.sleep(1.1)
    write_orders(AFTER_T)
    assert marked_orders(PRIMARY) == BEFORE_BACKUP + BEFORE_T + AFTER_T
    # The stream has what was written (it follows within milliseconds; the spool is read by the restore).
    time.sleep(1)
    media_file = node(MEDIA).run("find /srv/media -type f | sort | head -1").stdout.strip()
    assert media_file
    checksum = node(MEDIA).run("sha256sum %s", media_file).stdout.split()[0]
    ok, journal = unit_run(MEDIA, "stack-backup-media.service")
    assert ok, journal
    sql(PRIMARY, "SET FOREIGN_KEY_CHECKS = 0; DROP TABLE shop.orders_order")
    node(MEDIA).run("rm -f %s", media_file)
    return {"restore_to": restore_to, "media_file": media_file, "checksum": checksum, "backup": backup}


def test_a_running_primary_is_not_overwritten_unless_told_so(disaster):
    rc, out = playbook("playbooks/restore-database.yml", restore_to=repr(disaster["restore_to"]))
    assert rc != 0, out
    assert "restore_replace_running_primary=true" in out
    # It said what it would do, and did nothing.
    said = " ".join(out.split())
    assert "From the full backup" in said and "up to " + disaster["restore_to"] in said, said[-3000:]
    assert set(recap(out).values()) == {0}, recap(out)
    assert sql(PRIMARY, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop' "
                        "AND TABLE_NAME = 'orders_order'") == [["0"]]


def test_a_restore_to_a_time_brings_back_exactly_the_orders_before_it(disaster):
    rc, out = playbook("playbooks/restore-database.yml", restore_to=repr(disaster["restore_to"]),
                       restore_replace_running_primary="true")
    assert rc == 0, out[-4000:]
    assert marked_orders(PRIMARY) == BEFORE_BACKUP + BEFORE_T
    assert sql(PRIMARY, "SELECT @@read_only") == [["0"]]


def test_the_replicas_replicate_from_the_restored_primary(disaster):
    address = node(PRIMARY).interface("eth0").addresses[0]
    for replica in REPLICAS:
        status = replica_status(replica)
        assert status["Slave_IO_Running"] == "Yes" and status["Slave_SQL_Running"] == "Yes", status
        assert status["Master_Host"] == address
        assert marked_orders(replica) == BEFORE_BACKUP + BEFORE_T
    write_orders([9110])
    for replica in REPLICAS:
        for _ in range(50):
            if 9110 in marked_orders(replica):
                break
            time.sleep(0.2)
        assert marked_orders(replica) == BEFORE_BACKUP + BEFORE_T + [9110], replica
    sql(PRIMARY, "DELETE FROM shop.orders_order WHERE total BETWEEN 9100 AND 9199")


def test_a_backup_older_than_the_restore_replays_through_it(disaster):
    """The restore branched the primary's history: from the backup taken before it, the replay follows the old
    timeline up to the branch (not the dropped table after it), then the new one, to the primary's position."""
    before = disaster["backup"]
    # The restore's own backup, and any the daily timer took meanwhile (its window may fall in the test).
    newer = [s["id"] for s in snapshots("database", "--tag", "database") if s["time"] > before["time"]]
    assert newer, "the restore takes a new backup"
    forget = node(BACKUP).run(
        f"runuser -u restic-rest-server -- env {RESTIC} -r {REPO}/database forget {' '.join(newer)}")
    assert forget.rc == 0, forget.stderr
    listed = json.loads(node(BACKUP).run("/usr/local/sbin/stack-backup database-list").stdout)
    assert listed[-1]["id"] == before["id"]
    for _ in range(5):  # the app may write meanwhile: read both again
        position = sql(PRIMARY, "SELECT @@gtid_binlog_pos")[0][0]
        time.sleep(1)  # the stream follows within milliseconds
        replay = node(BACKUP).run("/usr/local/sbin/stack-backup binlog-apply --dry-run --gtid %s --since %s",
                                  listed[-1]["meta"]["gtid"], listed[-1]["time"])
        assert replay.rc == 0, replay.stderr
        if json.loads(replay.stdout)["gtid"] == position:
            break
    assert json.loads(replay.stdout)["gtid"] == position
    # The old timeline is read up to the branch and no further; the new one from there.
    branch = node(BACKUP).run(f"tail -1 /var/lib/stack-backup/binlog/{PRIMARY}/superseded").stdout.split()
    timelines = json.loads(replay.stdout)["timelines"]
    assert timelines[0]["timeline"] == f"{PRIMARY}/{branch[0]}" and timelines[0]["last"] == branch[2], timelines
    assert int(timelines[1]["first"].split("-")[2]) == int(branch[2].split("-")[2]) + 1, timelines


def test_the_site_serves_after_the_restore(disaster):
    """Every web node (web3 too) serves the catalog, from the restored primary and the reseeded replicas, and
    every load balancer sees it UP."""
    page = ("import urllib.request\n"
            "r = urllib.request.Request('http://127.0.0.1:8000/', headers={'Host': 'localhost', "
            "'X-Forwarded-Proto': 'https'})\n"
            "print(urllib.request.urlopen(r, timeout=10).status)")
    webs = hosts_of("webservers") + (["web3"] if WITH_WEB3.exists() else [])
    for web in webs:
        assert node(web).run("python3 -c %s", page).stdout.strip() == "200", web
    stat = "echo 'show stat web 4 -1' | socat - /run/haproxy/admin.sock"
    for lb in hosts_of("loadbalancers"):
        up = node(lb).run(f"for i in $(seq 30); do {stat} | grep -c ',UP,' | grep -qx {len(webs)} && exit 0; "
                          "sleep 1; done; exit 1")
        assert up.rc == 0, node(lb).run(stat).stdout


def test_a_deleted_media_file_is_restored(disaster):
    rc, out = playbook("playbooks/restore-media.yml", restore_path=disaster["media_file"])
    assert rc == 0, out[-3000:]
    assert node(MEDIA).run("sha256sum %s", disaster["media_file"]).stdout.split()[0] == disaster["checksum"]


def test_the_drill_passes_on_a_good_backup():
    ok, journal = unit_run(BACKUP, "stack-backup-drill.service")
    assert ok, journal
    assert "tables checked, all rows there" in journal
    m = metrics()
    assert m["django_stack_backup_drill_success"] == "1"
    assert int(m["django_stack_backup_drill_tables_checked"]) > 10
    assert f'django_stack_backup_last_timestamp_seconds{{kind="database",host="{SOURCE}"}}' in m


# Two ways a stored backup goes bad: a table's data file missing (a backup cut short), and bytes overwritten in a
# page of one (a disk's bit rot before the backup was shipped), found by the page checksums. (Bytes changed in the
# repository itself fail restic's own checks when the drill restores.)
CORRUPTIONS = {
    "missing_file": ("rm -f {bad}/shop/orders_order.ibd {bad}/shop/orders_order.new",
                     "CHECK TABLE shop.orders_order"),
    # Page 2, the file's segment inodes: CHECK TABLE never reads it (the old drill passed this backup), the server
    # does when the table next grows. Prepared first, so that no redo record rewrites the page when the drill
    # prepares it (again).
    "overwritten_page": ("mariadb-backup --prepare --target-dir={bad} >/dev/null 2>&1; "
                         "python3 -c \"import sys; f = open(sys.argv[1], 'r+b'); f.seek(2 * 16384 + 2000); "
                         "f.write(bytes(range(7, 71)))\" {bad}/shop/orders_order.ibd",
                         "innochecksum shop/orders_order.ibd"),
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_the_drill_fails_on_a_corrupted_backup(corruption):
    """The newest backup is stored again with one table's data damaged: the drill fails, and says which."""
    damage, expected = CORRUPTIONS[corruption]
    newest = snapshots("database", "--tag", "database")[-1]
    bad = "/var/tmp/corrupted-backup"
    script = (
        f"set -e; rm -rf {bad} {bad}.restic; {RESTIC} -r {REPO}/database restore --no-lock --quiet "
        f"{newest['id']} --target {bad}.restic; mv {bad}.restic{newest['paths'][0]} {bad}; rm -rf {bad}.restic; "
        f"{damage.format(bad=bad)}; chown -R restic-rest-server: {bad}; "
        f"runuser -u restic-rest-server -- env {RESTIC} -r {REPO}/database backup --quiet --tag database "
        f"--host corrupted {bad}; rm -rf {bad}")
    out = node(BACKUP).run("bash -c %s", script)
    assert out.rc == 0, out.stderr
    try:
        ok, journal = unit_run(BACKUP, "stack-backup-drill.service")
        assert not ok
        assert expected in journal, journal
        assert metrics()["django_stack_backup_drill_success"] == "0"
        assert node(BACKUP).run("systemctl is-failed stack-backup-drill.service").stdout.strip() == "failed"
    finally:
        ids = " ".join(s["id"] for s in snapshots("database", "--host", "corrupted"))
        node(BACKUP).run(f"runuser -u restic-rest-server -- env {RESTIC} -r {REPO}/database forget {ids}")
    ok, journal = unit_run(BACKUP, "stack-backup-drill.service")
    assert ok, journal


def expected_kept(times, daily, weekly, monthly):
    """restic's policy: newest first, the newest snapshot of each of the last N days, ISO weeks and months."""
    kept, last = set(), {}
    budget = {"d": daily, "w": weekly, "m": monthly}
    for t in sorted(times, reverse=True):
        buckets = {"d": t.strftime("%Y-%m-%d"), "w": "%d-%02d" % t.isocalendar()[:2], "m": t.strftime("%Y-%m")}
        for kind, bucket in buckets.items():
            if budget[kind] > 0 and last.get(kind) != bucket:
                last[kind] = bucket
                budget[kind] -= 1
                kept.add(t)
    return kept


def test_retention_keeps_daily_weekly_and_monthly_counts():
    """A backup a day for 40 days (in a series of their own): the prune keeps what the policy says, the newest of
    each of the last 7 days, 4 weeks and 6 months (the oldest too, as restic 0.17 and later do while a count is
    not used up)."""
    today = node(BACKUP).run("date '+%Y-%m-%d'").stdout.strip()
    now = datetime.datetime.fromisoformat(today + "T02:30:00")
    times = [now - datetime.timedelta(days=d) for d in range(1, 41)]
    stamps = " ".join(t.strftime("%Y-%m-%dT%H:%M:%S") for t in times)
    # Four at a time (restic's backups take shared locks).
    make = (f"printf '%s\\n' {stamps} | tr T ' ' | xargs -P 4 -I @ runuser -u restic-rest-server -- env {RESTIC} "
            f"-r {REPO}/database backup --quiet --tag database --tag retention-test --host retention --time @ "
            "/etc/hostname")
    try:
        assert node(BACKUP).run("bash -c %s", make).rc == 0
        real_before = [s["id"] for s in snapshots("database", "--tag", "database") if s["hostname"] != "retention"]
        ok, journal = unit_run(BACKUP, "stack-backup-prune.service")
        assert ok, journal
        left = {datetime.datetime.fromisoformat(s["time"][:19])
                for s in snapshots("database", "--host", "retention")}
        # The lab's policy is the role's default: 7 daily, 4 weekly, 6 monthly.
        expected = expected_kept(times, 7, 4, 6)
        assert left - {min(times)} == expected - {min(times)}
        assert 7 <= len(left) < len(times)
        # The real backups are another series: the newest of them is kept whatever the fake series did.
        real_after = [s["id"] for s in snapshots("database", "--tag", "database") if s["hostname"] != "retention"]
        assert real_before[-1] in real_after
    finally:
        ids = " ".join(s["id"] for s in snapshots("database", "--host", "retention"))
        if ids:
            node(BACKUP).run(f"runuser -u restic-rest-server -- env {RESTIC} -r {REPO}/database forget --prune {ids}")


def test_the_repositories_are_encrypted_at_rest():
    """What the backups hold (an app's table name, in every full backup) is nowhere in the repositories' files."""
    assert snapshots("database", "--tag", "database")
    found = node(BACKUP).run(f"grep -rl orders_orderline {REPO}")
    assert found.rc == 1, found.stdout
    # Without the password, restic cannot open them.
    wrong = node(BACKUP).run(f"echo wrong-password > /tmp/wrong; restic --no-cache -r {REPO}/database "
                             "--password-file /tmp/wrong snapshots")
    assert wrong.rc != 0
