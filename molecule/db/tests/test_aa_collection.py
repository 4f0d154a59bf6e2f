"""The collection, installed from the tarball `make collection` built, under Ansible's own strategies, as a user
without Mitogen runs it (ANSIBLE_STRATEGY=linear; the side-by-side tiers' plays, which name the collection's free
strategy, then run Ansible's own free strategy): its site playbook finds nothing to change on a host the
repository's site.yml converged. The default scenario runs the collection through Mitogen on its whole stack. Runs
first (file order), before the tests that change the topology."""

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from stacktest import changed_tasks, collection_site, container, hosts_of, installed_collection, recap

SCENARIO = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "molecule" / "db"


def _names(group) -> set:
    """The hosts of an inventory group (a YAML inventory's tree), its children's included."""
    children = (group.get("children") or {}).values()
    return set(group.get("hosts") or {}).union(*(_names(child or {}) for child in children))


def test_the_installed_collection_under_ansibles_own_strategies_changes_nothing(tmp_path):
    # The scenario's inventory reads molecule's folders (its throwaway secrets, the guestbook's source).
    env = installed_collection(tmp_path, keep_env=("MOLECULE_PROJECT_DIRECTORY", "MOLECULE_EPHEMERAL_DIRECTORY"))
    env["ANSIBLE_STRATEGY"] = "linear"
    inventory = tmp_path / "inventory"
    shutil.copytree(SCENARIO / "inventory", inventory)
    # The scenario's host that is in no tier yet (db4) is in the inventory too, in the environment's group, as an
    # operator's spare host would be (molecule's own inventory has it: every host's /etc/hosts lists it).
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())
    (environment,) = hosts
    listed = _names(hosts[environment])
    hosts[environment]["hosts"] = {h: None for h in hosts_of("all") if h not in listed}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    (inventory / "host_vars").mkdir()
    for host in hosts_of("all"):
        (inventory / "host_vars" / f"{host}.yml").write_text(yaml.safe_dump({
            "ansible_connection": "docker", "ansible_host": container(host)}))
    # Every host's facts in the user's fact cache, as a user's earlier runs left them: a run limited to one host
    # still knows the others' addresses (its firewall rules, /etc/hosts).
    facts = subprocess.run(["ansible", "all", "-i", str(inventory / "hosts.yml"), "-m", "ansible.builtin.setup"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert facts.returncode == 0, facts.stdout[-3000:] + facts.stderr[-3000:]
    # The primary: its tier is set up in the first side-by-side play, its backup client's place in the second.
    primary = hosts_of("db_primary")[0]
    out = collection_site(tmp_path, env, inventory, "collection-site-plain.log", "--limit", primary)
    changed = recap(out)
    assert set(changed) == {primary}, out[-3000:]
    assert changed[primary] == 0, changed_tasks(out)
    assert "mariadb : " in out and "common : " in out, out[-3000:]
