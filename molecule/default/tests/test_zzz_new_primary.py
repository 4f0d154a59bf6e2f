"""The primary's disk is lost: the database is restored onto a new host from the backups alone
(playbooks/restore-database.yml, the runbook's "onto a new host").

db4 is in no group until here. The operator's inventory puts it under db_primary and leaves the lost db1 out; the
restore refuses while db1 still accepts writes, then, once db1 is gone, sets db4 up, restores every order that was
acknowledged, names db4 in the fencing row, seeds the replicas from it, and site.yml points the stack at it.
Runs last (after the deploys): from here on the primary is db4, in an inventory of its own.
"""

import os
import subprocess
from pathlib import Path

from stacktest import container, edited_inventory, hosts_of, node, recap, run_playbook
from test_y_backup import BACKUP, PRIMARY, REPLICAS, WITH_WEB3, replica_status, sql

NEW = "db4"
LOST = PRIMARY
# Order totals of this module's rows.
ACKNOWLEDGED = [9301, 9302, 9303, 9304, 9305]
# Set by the restore test for the next one (the app's user the orders belong to).
RESTORED = []


def new_primary_inventory():
    """The lab's inventory as the operator edits it: db4 under db_primary, db1 out, the rest as it is."""
    web = hosts_of("webservers") + (["web3"] if WITH_WEB3.exists() else [])
    groups = {group: {"hosts": {h: None for h in hosts_of(group)}}
              for group in ("loadbalancers", "cacheservers", "mediaservers", "backupservers")}
    groups["webservers"] = {"hosts": {h: None for h in dict.fromkeys(web)}}
    groups["dbservers"] = {"children": {"db_primary": {"hosts": {NEW: None}},
                                        "db_replicas": {"hosts": {h: None for h in REPLICAS}}}}
    return edited_inventory("new-primary", {"lab": {"children": groups}},
                            Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "inventories" / "lab" / "group_vars",
                            leave_out=[LOST])


def orders(host):
    rows = sql(host, "SELECT CAST(total AS UNSIGNED) FROM shop.orders_order WHERE total BETWEEN 9300 AND 9399 "
                     "ORDER BY total")
    return [int(r[0]) for r in rows]


def test_a_restore_onto_a_new_host_refuses_while_the_old_primary_accepts_writes():
    rc, out = run_playbook("playbooks/restore-database.yml", inventory=new_primary_inventory())
    assert rc != 0, out[-3000:]
    assert "still accepts writes" in out, out[-3000:]
    assert set(recap(out).values()) == {0}, recap(out)
    assert node(NEW).run("test -e /usr/sbin/mariadbd").rc != 0


def test_a_lost_primary_is_restored_onto_a_new_host():
    user = sql(LOST, "SELECT MIN(id) FROM shop.auth_user")[0][0]
    for total in ACKNOWLEDGED:
        sql(LOST, f"INSERT INTO shop.orders_order (created, total, user_id) VALUES (NOW(6), {total}, {user})")
    epoch = int(sql(LOST, "SELECT epoch FROM stack_meta.fence")[0][0])
    # The last order is in the backup host's spool (the stream follows within milliseconds), then the disk is gone.
    spool = node(BACKUP).run(
        "for i in $(seq 20); do mariadb-binlog --base64-output=decode-rows -v /var/lib/stack-backup/binlog/%s/*/*.[0-9]* "
        "2>/dev/null | grep -q %s && exit 0; sleep 0.5; done; exit 1", LOST, f"{ACKNOWLEDGED[-1]}.00")
    assert spool.rc == 0, "the last order never reached the backup host's spool"
    subprocess.run(["docker", "kill", container(LOST)], check=True, capture_output=True)

    rc, out = run_playbook("playbooks/restore-database.yml", inventory=new_primary_inventory())
    assert rc == 0, out[-4000:]
    assert "a new host" in " ".join(out.split())
    # Every acknowledged order is back, on a writable primary named by a later fencing epoch.
    assert orders(NEW) == ACKNOWLEDGED
    assert sql(NEW, "SELECT @@read_only") == [["0"]]
    assert sql(NEW, "SELECT epoch, primary_name FROM stack_meta.fence") == [[str(epoch + 1), NEW]]
    # The replicas were seeded from it and replicate from it.
    address = node(NEW).run("getent hosts %s", NEW).stdout.split()[0]
    for replica in REPLICAS:
        status = replica_status(replica)
        assert status["Master_Host"] == address, (replica, status)
        assert status["Slave_IO_Running"] == status["Slave_SQL_Running"] == "Yes", (replica, status)
        assert orders(replica) == ACKNOWLEDGED, replica
        assert sql(replica, "SELECT @@read_only") == [["1"]]
    # The binary log stream follows the new primary.
    assert node(BACKUP).run(
        "for i in $(seq 60); do journalctl -u stack-backup-binlog --no-pager -o cat | "
        "grep -q 'streaming the binary logs of %s ' && exit 0; sleep 0.5; done; exit 1", NEW).rc == 0

    RESTORED.append(user)


def test_site_yml_points_the_stack_at_the_new_primary():
    """The runbook's second step: site.yml with the edited inventory; every web node's databases answer, and an
    order written now reaches the replicas."""
    assert RESTORED, "the lost primary was not restored onto the new host"
    user = RESTORED[0]
    webs = hosts_of("webservers") + (["web3"] if WITH_WEB3.exists() else [])
    # The tiers the new primary touches (the load balancers, caches and media servers name no db server).
    rc, out = run_playbook("site.yml", inventory=new_primary_inventory(),
                           limit=[NEW, *REPLICAS, *webs, BACKUP])
    assert rc == 0, out[-4000:]
    # Every web node answers with every database alias its own server's (the primary is db4: db1 is gone).
    health = ("import json, urllib.request\n"
              "r = urllib.request.Request('http://127.0.0.1:8000/healthz', headers={'Host': 'localhost'})\n"
              "print(json.load(urllib.request.urlopen(r, timeout=10))['status'])")
    for web in webs:
        assert node(web).run("python3 -c %s", health).stdout.strip() == "ok", web
    sql(NEW, f"INSERT INTO shop.orders_order (created, total, user_id) VALUES (NOW(6), 9399, {user})")
    for replica in REPLICAS:
        for _ in range(50):
            if 9399 in orders(replica):
                break
            subprocess.run(["sleep", "0.2"])
        assert 9399 in orders(replica), replica
