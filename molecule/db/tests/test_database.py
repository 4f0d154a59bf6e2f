"""The database tier: a primary with GTID, semi-synchronous read replicas; seeding, promotion, bad input.

The tests run in file order: the topology changes as they go (db4 joins, db1 is lost and db2 or db3 promoted).
"""

import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml

from stacktest import container, edited_inventory, hosts_of, node, recap, run_playbook, tcp_open

SECRETS = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secrets"
# The scale-out test adds db4 to db_replicas with this extra inventory file; every later run keeps it, as an
# operator's inventory would.
WITH_DB4 = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "with-db4.yml"
# Who the promotion test promoted, and the replica it re-pointed.
PROMOTED = {}


def app_password():
    return (SECRETS / "app").read_text().split()[0]


def sql(host, query):
    """Run SQL as root (unix socket) on a db host; rows as lists of strings."""
    cmd = node(host).run("mariadb -N -B -e %s", query)
    assert cmd.rc == 0, cmd.stderr
    return [line.split("\t") for line in cmd.stdout.splitlines()]


def app_sql(server, query, client=None):
    """Run SQL with the app's account from the app client (a web node): (rc, stdout, stderr)."""
    client = client or hosts_of("webservers")[0]
    cmd = node(client).run(
        "mariadb --connect-timeout=3 -h %s -u guestbook -p%s guestbook -N -B -e %s", server, app_password(), query)
    return cmd.rc, cmd.stdout, cmd.stderr


def replica_status(host):
    cmd = node(host).run("mariadb -e 'SHOW REPLICA STATUS\\G'")
    assert cmd.rc == 0, cmd.stderr
    status = {}
    for line in cmd.stdout.splitlines():
        if ":" in line:
            key, _, value = line.partition(":")
            status[key.strip()] = value.strip()
    return status


def wait_for_row(host, table, marker, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if sql(host, f"SELECT COUNT(*) FROM guestbook.{table} WHERE marker = '{marker}'") == [["1"]]:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module", autouse=True)
def probe_table():
    primary = hosts_of("db_primary")[0]
    rc, _, err = app_sql(primary, "CREATE TABLE IF NOT EXISTS probe (id INT AUTO_INCREMENT PRIMARY KEY, "
                                  "marker VARCHAR(64) NOT NULL UNIQUE)")
    assert rc == 0, err


def test_semi_sync_is_on_with_every_replica():
    primary = hosts_of("db_primary")[0]
    status = dict(sql(primary, "SHOW STATUS LIKE 'Rpl_semi_sync_master_%'"))
    assert status["Rpl_semi_sync_master_status"] == "ON"
    assert int(status["Rpl_semi_sync_master_clients"]) == len(hosts_of("db_replicas"))
    assert sql(primary, "SELECT @@rpl_semi_sync_master_wait_point") == [["AFTER_SYNC"]]


@pytest.mark.parametrize("replica", hosts_of("db_replicas"))
def test_replica_runs_with_gtid_and_no_lag(replica):
    status = replica_status(replica)
    assert status["Slave_IO_Running"] == "Yes"
    assert status["Slave_SQL_Running"] == "Yes"
    assert status["Using_Gtid"] == "Slave_Pos"
    assert status["Seconds_Behind_Master"] == "0"
    assert sql(replica, "SELECT @@read_only, @@rpl_semi_sync_slave_enabled") == [["1", "1"]]


_WRITER = """
end=$((SECONDS + {seconds})); rm -f /tmp/{log}
while [ $SECONDS -lt $end ]; do
  t=$(date +%s.%N)
  out=$(mariadb --connect-timeout=1 -h {server} -u guestbook -p{password} guestbook \\
        -e "INSERT INTO probe (marker) VALUES (REPLACE(UUID(), '-', ''))" 2>&1)
  rc=$?
  if [ $rc -eq 0 ]; then s=ok; elif echo "$out" | grep -q -e 1290 -e read-only; then s=read-only; else s=down; fi
  echo "$t $s" >> /tmp/{log}
  sleep 0.05
done
"""


# A restarted primary is writable once a peer has answered its fencing check, not after the check's wait for
# peers (mariadb_fence_peer_wait, 30 s). How soon is measured by `make bench` (routine events: a primary restart
# under writes), not here: this bound only tells the two apart, with room for a machine busy with another scenario
# (1.73 s once, beside molecule's default scenario, against well under a second alone).
FENCE_ANSWER_BOUND = 5.0


def timed_writes(server, seconds, log, during):
    """Write to ``server`` from the app client for ``seconds`` (bounded), running ``during()`` meanwhile; return
    [(time, "ok" | "read-only" | "down"), ...]."""
    writer = node(hosts_of("webservers")[0])
    script = _WRITER.format(seconds=seconds, log=log, server=server, password=app_password())
    assert writer.run("systemd-run --unit %s bash -c %s", log, script).rc == 0
    time.sleep(1.5)
    during()
    assert writer.run(f"timeout {seconds + 10} sh -c 'while systemctl is-active -q {log}; do sleep 0.2; done'").rc == 0
    return [(float(t), s) for t, s in (line.split() for line in writer.run(f"cat /tmp/{log}").stdout.splitlines())]


def test_a_restarted_primary_takes_writes_within_a_second_of_answering():
    """systemctl restart mariadb on the primary: it starts read-only, like every server, and its fencing check
    (no peer knows a later promotion) makes it writable; writes succeed as soon as a peer has answered that check
    (well under a second on a quiet machine: `make bench` measures it; FENCE_ANSWER_BOUND says why the bound here is
    looser)."""
    primary = hosts_of("db_primary")[0]
    attempts = timed_writes(primary, 12, "restart-writer",
                            lambda: node(primary).run("systemctl restart mariadb"))
    states = [s for _, s in attempts]
    assert "down" in states, f"the restart was not seen by the writer: {states}"
    last_down = max(i for i, s in enumerate(states) if s == "down")
    answered = attempts[last_down + 1][0]
    first_ok = next(t for t, s in attempts[last_down + 1:] if s == "ok")
    assert first_ok - answered < FENCE_ANSWER_BOUND, attempts[last_down - 2:last_down + 30]
    assert states[-1] == "ok"
    journal = node(primary).run("journalctl -u mariadb --since -2min -o cat").stdout
    assert "stack-mariadb-fence: the primary at epoch 1: accepting writes" in journal, journal[-2000:]
    assert sql(primary, "SELECT @@read_only") == [["0"]]


def test_a_restarted_replica_stays_read_only_and_replicates():
    replica = hosts_of("db_replicas")[0]
    assert node(replica).run("systemctl restart mariadb").rc == 0
    assert sql(replica, "SELECT @@read_only") == [["1"]]
    marker = uuid.uuid4().hex
    assert app_sql(hosts_of("db_primary")[0], f"INSERT INTO probe (marker) VALUES ('{marker}')")[0] == 0
    assert wait_for_row(replica, "probe", marker, 5.0)


def test_every_server_holds_the_fencing_row_naming_the_primary():
    primary = hosts_of("db_primary")[0]
    for host in hosts_of("dbservers"):
        assert sql(host, "SELECT epoch, primary_name FROM stack_meta.fence") == [["1", primary]], host
        assert "read_only = ON" in node(host).file("/etc/mysql/mariadb.conf.d/62-stack-role.cnf").content_string


def test_a_row_written_on_the_primary_is_on_every_replica_within_2s():
    marker = uuid.uuid4().hex
    rc, _, err = app_sql(hosts_of("db_primary")[0], f"INSERT INTO probe (marker) VALUES ('{marker}')")
    assert rc == 0, err
    for replica in hosts_of("db_replicas"):
        assert wait_for_row(replica, "probe", marker, 2.0), replica


def test_the_app_account_cannot_write_on_a_replica():
    rc, _, err = app_sql(hosts_of("db_replicas")[0], "INSERT INTO probe (marker) VALUES ('on-a-replica')")
    assert rc != 0 and "read-only" in err


def test_the_app_account_is_refused_from_a_db_server():
    # The firewall lets db servers in (replication); the account itself is only for web nodes.
    rc, _, err = app_sql(hosts_of("db_primary")[0], "SELECT 1", client=hosts_of("db_replicas")[0])
    assert rc != 0 and ("not allowed" in err or "Access denied" in err), err


def test_the_database_port_is_closed_to_hosts_outside_web_and_db_tiers():
    # db4 is in no group yet.
    assert not tcp_open("db4", hosts_of("db_primary")[0], 3306, timeout=1.5)
    assert tcp_open(hosts_of("webservers")[0], hosts_of("db_primary")[0], 3306)


def test_root_only_through_the_socket_and_no_anonymous_or_test_database():
    primary = hosts_of("db_primary")[0]
    assert sql(primary, "SELECT Host FROM mysql.user WHERE User = 'root'") == [["localhost"]]
    assert sql(primary, "SELECT COUNT(*) FROM mysql.user WHERE User = ''") == [["0"]]
    assert sql(primary, "SHOW DATABASES LIKE 'test'") == []
    assert node(hosts_of("webservers")[0]).run(
        "mariadb --connect-timeout=3 -h %s -u root -e 'SELECT 1'", primary).rc != 0


def test_replication_account_is_only_for_db_servers():
    primary = hosts_of("db_primary")[0]
    hosts = {row[0] for row in sql(primary, "SELECT Host FROM mysql.user WHERE User = 'replication'")}
    db_addresses = {node(h).interface("eth0").addresses[0] for h in hosts_of("dbservers")}
    assert hosts == db_addresses


def test_a_new_replica_is_seeded_with_earlier_rows_and_replicates():
    primary = hosts_of("db_primary")[0]
    before = uuid.uuid4().hex
    assert app_sql(primary, f"INSERT INTO probe (marker) VALUES ('{before}')")[0] == 0
    WITH_DB4.write_text(yaml.safe_dump({"dbtest": {"children": {"dbservers": {"children": {
        "db_replicas": {"hosts": {"db4": None}}}}}}}))
    rc, out = run_playbook("site.yml", WITH_DB4)
    assert rc == 0, out[-4000:]
    assert wait_for_row("db4", "probe", before, 2.0)
    after = uuid.uuid4().hex
    assert app_sql(primary, f"INSERT INTO probe (marker) VALUES ('{after}')")[0] == 0
    assert wait_for_row("db4", "probe", after, 2.0)
    status = replica_status("db4")
    assert status["Using_Gtid"] == "Slave_Pos" and status["Slave_SQL_Running"] == "Yes"


def test_a_primary_that_replicates_stops_the_run():
    primary, replica = hosts_of("db_primary")[0], hosts_of("db_replicas")[0]
    sql(primary, f"CHANGE MASTER TO MASTER_HOST='{replica}', MASTER_USER='nobody', MASTER_USE_GTID=slave_pos")
    try:
        rc, out = run_playbook("playbooks/database.yml", WITH_DB4)
        assert rc != 0
        assert "is in db_primary but is a replica of" in " ".join(out.split()), out[-4000:]
    finally:
        sql(primary, "RESET SLAVE ALL")


def test_a_diverged_replica_stops_the_run():
    replica = hosts_of("db_replicas")[-1]
    sql(replica, "INSERT INTO guestbook.probe (marker) VALUES ('written-on-the-replica')")
    try:
        rc, out = run_playbook("playbooks/database.yml", WITH_DB4)
        assert rc != 0
        assert f"{replica} has diverged from its primary" in " ".join(out.split()), out[-4000:]
    finally:
        # Out of service from here on: it no longer acknowledges the primary's commits.
        sql(replica, "STOP SLAVE")


def test_promotion_is_refused_while_the_primary_answers():
    rc, out = run_playbook("playbooks/promote_replica.yml", WITH_DB4, limit=["db2", "db4"])
    assert rc != 0
    assert "still answers on port 3306" in " ".join(out.split()), out[-4000:]
    assert replica_status("db2")["Slave_SQL_Running"] == "Yes"
    assert sql("db2", "SELECT @@read_only") == [["1"]]


def test_promotion_keeps_every_acknowledged_write():
    primary = hosts_of("db_primary")[0]
    diverged = hosts_of("db_replicas")[-1]
    writer = node(hosts_of("webservers")[0])
    # The diverged replica of the previous test is not a candidate: take it out of this test's topology.
    survivors = ["db2", "db4"]
    assert diverged not in survivors
    rc, _, err = app_sql(primary, "CREATE TABLE IF NOT EXISTS acks (id INT PRIMARY KEY)")
    assert rc == 0, err
    # A bounded writer: 2,000 inserts at most, stopping at the first failure; each id is recorded only
    # after the server acknowledged its commit.
    writer.run("rm -f /tmp/acked")
    script = (f"for i in $(seq 1 2000); do mariadb --connect-timeout=2 -h {primary} -u guestbook -p{app_password()} "
              f"guestbook -e \"INSERT INTO acks VALUES ($i)\" || break; echo $i >> /tmp/acked; done")
    assert writer.run("systemd-run --unit promotion-writer bash -c %s", script).rc == 0
    time.sleep(3)
    subprocess.run(["docker", "stop", "-t", "0", container(primary)], check=True, capture_output=True)
    assert writer.run("timeout 30 sh -c 'while systemctl is-active -q promotion-writer; do sleep 0.2; done'").rc == 0
    acked = [int(x) for x in writer.run("cat /tmp/acked").stdout.split()]
    assert len(acked) > 10, "the writer should have committed rows before the primary stopped"

    rc, out = run_playbook("playbooks/promote_replica.yml", WITH_DB4, limit=survivors)
    assert rc == 0, out[-4000:]
    flat = " ".join(out.split())
    new_primary = next(h for h in survivors if f"{h} is the primary now" in flat)
    other = next(h for h in survivors if h != new_primary)
    PROMOTED.update(primary=new_primary, replica=other)

    rows = {int(r[0]) for r in sql(new_primary, "SELECT id FROM guestbook.acks")}
    assert set(acked) <= rows, f"acknowledged but lost: {sorted(set(acked) - rows)[:10]}"
    marker = uuid.uuid4().hex
    rc, _, err = app_sql(new_primary, f"INSERT INTO probe (marker) VALUES ('{marker}')")
    assert rc == 0, err
    assert wait_for_row(other, "probe", marker, 2.0), replica_status(other)
    assert replica_status(other)["Master_Host"] == node(new_primary).interface("eth0").addresses[0]


def test_the_old_primary_comes_back_read_only_and_the_old_inventory_is_refused():
    """After the promotion the old primary comes back (its container starts, systemd starts MariaDB): it finds a
    peer with a later fencing epoch and stays read-only, also after another restart. site.yml (and the database
    playbook alone) with the inventory not yet edited refuse before changing anything, naming the fix."""
    assert PROMOTED, "the promotion test did not promote a replica"
    old, new = hosts_of("db_primary")[0], PROMOTED["primary"]
    subprocess.run(["docker", "start", container(old)], check=True, capture_output=True)
    assert node(old).run("timeout 90 sh -c 'until systemctl is-active -q mariadb; do sleep 0.5; done'").rc == 0
    assert sql(old, "SELECT @@read_only") == [["1"]]
    assert node(old).file("/var/lib/mysql/stack-fenced").exists
    assert "FENCED" in node(old).run("journalctl -u mariadb -o cat").stdout
    assert node(old).run("systemctl restart mariadb").rc == 0
    assert sql(old, "SELECT @@read_only") == [["1"]]
    rc, _, err = app_sql(old, "INSERT INTO probe (marker) VALUES ('on-the-fenced-primary')")
    assert rc != 0 and "read-only" in err, err

    rc, out = run_playbook("site.yml", WITH_DB4)
    flat = " ".join(out.split())
    assert rc != 0
    assert f"{new} is the primary since the latest promotion" in flat, out[-4000:]
    assert f"Move {new} from db_replicas to db_primary and take {old} out of db_primary" in flat
    changed = recap(out)
    assert changed and all(n == 0 for n in changed.values()), changed
    # The role alone (no preflight) refuses too, before its first change.
    rc, out = run_playbook("playbooks/database.yml", WITH_DB4)
    assert rc != 0
    assert "Nothing was changed" in out and ("was fenced" in out or "was promoted since" in out), out[-4000:]
    changed = recap(out)
    assert all(n == 0 for n in changed.values()), changed
    assert sql(old, "SELECT @@read_only") == [["1"]]
    assert sql(new, "SELECT @@read_only") == [["0"]]


def promoted_inventory(primary, replicas):
    """The scenario's inventory as the operator edits it after a promotion: the same hosts and connection
    settings, the new primary under db_primary, the lost and the diverged servers in no group."""
    return edited_inventory("promoted", {"dbtest": {"children": {
        **{group: {"hosts": {h: None for h in hosts_of(group)}}
           for group in ("loadbalancers", "webservers", "cacheservers", "mediaservers")},
        "dbservers": {"children": {"db_primary": {"hosts": {primary: None}},
                                   "db_replicas": {"hosts": {h: None for h in replicas}}}}}}},
        Path(__file__).resolve().parent.parent / "inventory" / "group_vars")


def test_site_yml_follows_the_promotion_without_restarting_the_new_primary():
    assert PROMOTED, "the promotion test did not promote a replica"
    primary, replica = PROMOTED["primary"], PROMOTED["replica"]
    main_pid = node(primary).run("systemctl show -p MainPID --value mariadb").stdout.strip()
    inventory = promoted_inventory(primary, [replica])
    rc, out = run_playbook("site.yml", inventory=inventory, limit=[primary, replica, *hosts_of("webservers")])
    assert rc == 0, out[-4000:]
    # The inventory now names its role: the promotion's override is gone, the role's settings hold, and the
    # server taking writes was never restarted.
    assert not node(primary).file("/etc/mysql/mariadb.conf.d/70-promoted.cnf").exists
    # Every server starts read-only; the fencing row, replicated, names the new primary with the next epoch.
    assert "read_only = ON" in node(primary).file("/etc/mysql/mariadb.conf.d/62-stack-role.cnf").content_string
    for host in (primary, replica):
        assert sql(host, "SELECT epoch, primary_name FROM stack_meta.fence") == [["2", primary]], host
    assert node(primary).run("systemctl show -p MainPID --value mariadb").stdout.strip() == main_pid
    assert sql(primary, "SELECT @@read_only, @@rpl_semi_sync_master_enabled") == [["0", "1"]]
    assert sql(replica, "SELECT @@read_only, @@rpl_semi_sync_master_enabled") == [["1", "0"]]
    marker = uuid.uuid4().hex
    rc, _, err = app_sql(primary, f"INSERT INTO probe (marker) VALUES ('{marker}')")
    assert rc == 0, err
    assert wait_for_row(replica, "probe", marker, 2.0), replica_status(replica)


def test_the_promoted_primary_is_writable_after_a_restart():
    primary, replica = PROMOTED["primary"], PROMOTED["replica"]
    attempts = timed_writes(primary, 12, "restart-promoted-writer",
                            lambda: node(primary).run("systemctl restart mariadb"))
    states = [s for _, s in attempts]
    assert "down" in states and states[-1] == "ok", states
    last_down = max(i for i, s in enumerate(states) if s == "down")
    first_ok = next(t for t, s in attempts[last_down + 1:] if s == "ok")
    assert first_ok - attempts[last_down + 1][0] < FENCE_ANSWER_BOUND, attempts[last_down - 2:last_down + 30]
    assert sql(replica, "SELECT @@read_only") == [["1"]]
