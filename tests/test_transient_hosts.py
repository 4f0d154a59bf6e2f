"""A host that a play adds while site.yml runs (django_web's throwaway wheel-build container, add_host) is not a
server: the plays and host lists that come after it in the same run leave it out.

Before this was so, the monitoring play that follows the web tier in site.yml failed on a fresh converge: its
host lists read every host's address, and the build container has none (no facts, it is gone by then). The
list of servers is also sorted: a set's order changed Prometheus's configuration on every run.

The lab's inventory is copied with an address per host (no host is contacted), the web tier's add_host is
replayed, then the monitoring roles' inputs are rendered and the agent play's host pattern is resolved.
"""

import json
import os
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BUILD_CONTAINER = "django-web-build-shop-0123456789ab"


def add_host_task():
    """The web tier's own add_host task (roles/django_web/tasks/wheels.yml), with its name and groups."""
    tasks = yaml.safe_load((ROOT / "roles/django_web/tasks/wheels.yml").read_text())
    (task,) = [t for t in tasks if "ansible.builtin.add_host" in t]
    return {"name": "Replay the web tier's add_host", "ansible.builtin.add_host": task["ansible.builtin.add_host"],
            "vars": {"__django_web_build_container": BUILD_CONTAINER}}


def agent_pattern():
    plays = yaml.safe_load((ROOT / "playbooks/monitoring_agents.yml").read_text())
    (play,) = [p for p in plays if "agent" in p["name"]]
    return play["hosts"]


def test_a_build_container_added_during_the_run_is_not_counted_as_a_server(tmp_path):
    inventory_dir = tmp_path / "inventory"
    inventory_dir.mkdir()
    lab = yaml.safe_load((ROOT / "inventories/lab/hosts.yml").read_text())
    addresses = {}

    def give_addresses(group):
        for name in list((group.get("hosts") or {})):
            addresses[name] = f"192.0.2.{len(addresses) + 10}"
            group["hosts"][name] = {"stack_private_address": addresses[name], "ansible_connection": "local"}
        for child in (group.get("children") or {}).values():
            give_addresses(child)

    give_addresses(lab["lab"])
    (inventory_dir / "hosts.yml").write_text(yaml.safe_dump(lab))
    (inventory_dir / "group_vars").symlink_to(ROOT / "inventories/lab/group_vars")
    mon = lab["lab"]["children"]["monitoring"]["hosts"]
    assert mon, "the lab has a monitoring host"
    mon_name = next(iter(mon))
    rendered = ("{{ {'clients': monitoring_journal_client_addresses,"
                " 'nodes': monitoring_targets | selectattr('job', 'eq', 'node') | map(attribute='instance') | list,"
                " 'etc_hosts': stack_host_addresses | list, 'stack_hosts': stack_hosts, 'all': groups['all']}"
                " | to_json }}")
    playbook = [
        {"name": "The web tier adds its build container", "hosts": "localhost", "connection": "local",
         "gather_facts": False, "tasks": [add_host_task()]},
        {"name": "The monitoring host's inputs", "hosts": mon_name, "gather_facts": False,
         "vars_files": [str(ROOT / "playbooks/vars/monitoring.yml")],
         "tasks": [{"name": "Render", "ansible.builtin.debug": {"msg": rendered}}]},
        {"name": "The agent play's hosts", "hosts": agent_pattern(), "gather_facts": False,
         "tasks": [{"name": "Who", "ansible.builtin.debug": {"msg": "{{ inventory_hostname }}"}}]},
    ]
    playbook_dir = tmp_path / "playbooks"
    playbook_dir.mkdir()
    # The project's group_vars/all, as beside the real playbooks.
    (playbook_dir / "group_vars").symlink_to(ROOT / "group_vars")
    (playbook_dir / "check.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FACT_CACHING="memory", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    done = subprocess.run(["ansible-playbook", "-i", str(inventory_dir / "hosts.yml"), str(playbook_dir / "check.yml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    plays = json.loads(done.stdout)["plays"]
    result = plays[1]["tasks"][0]["hosts"][mon_name]["msg"]
    inputs = json.loads(result) if isinstance(result, str) else result
    servers = set(addresses)
    # Sorted, the same in every run and whatever order the inventory lists its hosts in (the files rendered from it must not change between runs).
    assert inputs["stack_hosts"] == sorted(h for h in inputs["all"] if h != BUILD_CONTAINER)
    assert BUILD_CONTAINER in inputs["all"]
    assert set(inputs["nodes"]) == servers
    assert set(inputs["etc_hosts"]) == servers
    assert set(inputs["clients"]) == {a for h, a in addresses.items() if h != mon_name}
    # One entry per task, or (Mitogen's strategy, ansible.cfg) one per task and host: the hosts of all of them.
    assert {host for task in plays[2]["tasks"] for host in task["hosts"]} == servers
