"""site.yml sets up the tiers that need nothing from one another side by side (playbooks/tiers.yml, the free
strategy), while each tier's playbook also runs alone. The two must not drift apart: every tier playbook's role
runs in tiers.yml on the same group, with the same inputs (vars files) and conditions, in the same order; nothing
else runs there; site.yml runs every tier; and no task of a role that site.yml runs under the free strategy (the
tiers side by side, the common role and the monitoring agent on every server) relies on the linear strategy
(run_once and actions that bypass the host loop run on every host, or fail, under the free strategy).
"""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOKS = ROOT / "playbooks"
# The tier playbooks whose plays tiers.yml runs side by side (monitoring.yml's agent play is imported on its own).
TIER_PLAYBOOKS = ["database.yml", "cache.yml", "media.yml", "backup.yml", "monitoring.yml"]
# Actions Ansible runs once for all hosts (BYPASS_HOST_LOOP), which the free strategy refuses.
HOST_LOOP_BYPASSES = {"add_host", "group_by", "ansible.builtin.add_host", "ansible.builtin.group_by"}


def load(name):
    return yaml.safe_load((PLAYBOOKS / name).read_text())


def runs(play):
    """What a play runs: (role, tasks file, the include's condition or None), in order."""
    found = []
    for role in play.get("roles", []):
        found.append((role["role"] if isinstance(role, dict) else role, "main", None))
    for task in play.get("tasks", []):
        include = task.get("ansible.builtin.include_role")
        if include:
            found.append((include["name"], include.get("tasks_from", "main"), task.get("when")))
    return found


def tier_runs():
    """Every role run of the tier playbooks: (playbook, group, role, tasks file, condition, vars files)."""
    found = []
    for name in TIER_PLAYBOOKS:
        for play in load(name):
            if "ansible.builtin.import_playbook" in play:
                continue
            for role, tasks_from, condition in runs(play):
                found.append((name, play["hosts"], role, tasks_from, condition, play.get("vars_files", [])))
    return found


def side_by_side_runs():
    """Every role run of tiers.yml: ((play index, task index), group, role, tasks file, condition, play)."""
    found = []
    for play_index, play in enumerate(load("tiers.yml")):
        for task_index, (role, tasks_from, condition) in enumerate(runs(play)):
            (group,) = re.findall(r"inventory_hostname in groups\['(\w+)'\]", condition)
            found.append(((play_index, task_index), group, role, tasks_from, condition, play))
    return found


def test_tiers_run_side_by_side_as_their_playbooks_run_them():
    side = side_by_side_runs()
    matched = []
    for playbook, group, role, tasks_from, condition, vars_files in tier_runs():
        same = [run for run in side if run[1:4] == (group, role, tasks_from)]
        assert len(same) == 1, f"{playbook}: {role} ({tasks_from}) on {group} is not run once by tiers.yml"
        ((position, _, _, _, side_condition, play),) = same
        assert group in play["hosts"].split(":")
        assert play["strategy"] == "mitogen_free"
        assert set(vars_files) <= set(play["vars_files"]), f"{playbook}: {role}'s inputs differ in tiers.yml"
        if condition:
            assert condition in side_condition, f"{playbook}: {role} has another condition in tiers.yml"
        assert "always" in next(task for task in play["tasks"]
                                if task.get("ansible.builtin.include_role", {}).get("name") == role
                                and side_condition == task["when"])["tags"]
        matched.append((playbook, position))
    # Nothing else runs side by side, and each tier playbook's order is kept (the primary before its replicas, the
    # backup host before its clients).
    assert len(matched) == len(side)
    for playbook in TIER_PLAYBOOKS:
        positions = [position for name, position in matched if name == playbook]
        assert positions == sorted(positions), playbook


def test_site_runs_every_tier_and_the_agents_after_the_monitoring_host():
    imported = [entry["ansible.builtin.import_playbook"] for entry in load("site.yml")]
    assert imported == ["preflight.yml", "common.yml", "tiers.yml", "web.yml", "loadbalancer.yml",
                        "monitoring_agents.yml"]
    monitoring = load("monitoring.yml")
    assert monitoring[-1] == {"name": "Set up every host's monitoring agent",
                              "ansible.builtin.import_playbook": "monitoring_agents.yml"}
    assert ("mariadb", "db_replicas") in {(run[2], run[1]) for run in side_by_side_runs()}


def task_files(role, tasks_from):
    """A role's tasks file and every file it includes or imports from its own tasks folder."""
    folder = ROOT / "roles" / role / "tasks"
    pending, seen = [f"{tasks_from}.yml"], []
    while pending:
        name = pending.pop()
        if name in seen or not (folder / name).exists():
            continue
        seen.append(name)
        pending.extend(re.findall(r"(?:file|include_tasks|import_tasks):\s*([\w./-]+\.yml)",
                                  (folder / name).read_text()))
    return [folder / name for name in seen] + [ROOT / "roles" / role / "handlers" / "main.yml"]


def walk(tasks):
    for task in tasks or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from walk(task.get(key))


def free_strategy_runs():
    """(role, tasks file) of every role that a play of site.yml runs under the free strategy: the tiers side by
    side, and the plays that set up every server (common.yml) and every agent (monitoring_agents.yml) host by host."""
    found = [(role, tasks_from) for _, _, role, tasks_from, _, _ in side_by_side_runs()]
    for entry in load("site.yml"):
        for play in load(entry["ansible.builtin.import_playbook"]):
            if play.get("strategy") != "mitogen_free":
                continue
            for task in walk(play.get("tasks")):
                for key in ("ansible.builtin.import_role", "ansible.builtin.include_role"):
                    if key in task:
                        found.append((task[key]["name"], task[key].get("tasks_from", "main")))
    return found


def test_the_plays_of_every_server_run_host_by_host():
    free = set(free_strategy_runs())
    assert {("common", "main"), ("monitoring_agent", "main"), ("monitoring_agent", "settings")} <= free


def test_no_role_run_under_the_free_strategy_needs_the_linear_strategy():
    pending = free_strategy_runs()
    checked = set()
    while pending:
        role, tasks_from = pending.pop()
        if (role, tasks_from) in checked:
            continue
        checked.add((role, tasks_from))
        for path in task_files(role, tasks_from):
            if not path.exists():
                continue
            for task in walk(yaml.safe_load(path.read_text())):
                where = f"{path.relative_to(ROOT)}: {task.get('name')}"
                assert not task.get("run_once"), f"{where}: run_once runs on every host under the free strategy"
                assert not HOST_LOOP_BYPASSES & set(task), f"{where}: the free strategy refuses this action"
                for key in ("ansible.builtin.import_role", "ansible.builtin.include_role"):
                    if key in task:
                        pending.append((task[key]["name"], task[key].get("tasks_from", "main")))
    # The roles' own files and those of other roles they import (the common role's firewall rules) were read.
    assert ("common", "firewall_allow") in checked and len(checked) > 6
