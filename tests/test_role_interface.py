"""Each role's interface: meta/argument_specs.yml is its one source, and a role reads nothing but its own inputs.

- scripts/role-interface.py (also in `make lint`) finds defaults, specs and README tables in agreement, and finds
  a disagreement when one is planted;
- no role reads a stack_* variable (the topology), playbook_dir, or another role's variables: the playbooks map
  the topology to each role's inputs.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "meta" / "argument_specs.yml").exists())
# Names that look like variables but are not: MariaDB's fencing schema, nftables tables, the fence script, and
# the prefix of the files mariadb-backup writes (mariadb_backup_info, ...).
NOT_VARIABLES = {"stack_meta", "stack_filter", "stack_check", "mariadb_backup_"}


def check(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(root / "scripts" / "role-interface.py")], capture_output=True,
                          text=True, timeout=120)


def test_defaults_specs_and_readmes_agree():
    done = check(ROOT)
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize("plant,message", [
    (lambda r: (r / "defaults/main.yml").write_text((r / "defaults/main.yml").read_text()
                                                    .replace("memcached_memory_mb: 256", "memcached_memory_mb: 512")),
     "memcached_memory_mb: default 256 in the spec, 512 in defaults/main.yml"),
    (lambda r: (r / "defaults/main.yml").write_text((r / "defaults/main.yml").read_text() + "memcached_new: 1\n"),
     "memcached_new is in defaults/main.yml but not in meta/argument_specs.yml"),
    (lambda r: (r / "README.md").write_text((r / "README.md").read_text().replace("Memory for items", "Memory")),
     "memcached: README.md's variable table is not the spec's"),
])
def test_a_disagreement_fails_the_check(tmp_path, plant, message):
    shutil.copytree(ROOT / "roles", tmp_path / "roles")
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    plant(tmp_path / "roles" / "memcached")
    done = check(tmp_path)
    assert done.returncode == 1 and message in done.stdout, done.stdout


# What Ansible evaluates in a template: its expressions and statements, with either pair of delimiters (the alert
# rules set `[[ ]]` because PromQL's own braces would clash). The rest is the file's text, where metric names such
# as haproxy_server_status are not variables.
JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\[\[.*?\]\]|\[%.*?%\]")


def evaluated(path: Path, line: str) -> str:
    """The part of a line that Ansible evaluates: none of a file that is copied as it is (files/), the Jinja of a
    template, and all of a YAML line but its comment."""
    if "files" in path.relative_to(ROOT).parts[2:3]:
        return ""
    if path.suffix == ".j2":
        return " ".join(JINJA.findall(line))
    return "" if line.lstrip().startswith("#") else line


@pytest.mark.parametrize("role", ROLES)
def test_a_role_reads_only_its_own_inputs(role):
    # monitoring_agent's own variables begin with another role's name (monitoring): they are still its own.
    others = [r for r in ROLES if r != role and not role.startswith(f"{r}_")]
    offenders = []
    for path in sorted((ROOT / "roles" / role).rglob("*")):
        if not path.is_file() or path.suffix == ".md" or "meta" in path.parts:
            continue
        for number, text in enumerate(path.read_text().splitlines(), 1):
            line = evaluated(path, text)
            for name in re.findall(r"\b(stack_\w+|playbook_dir)\b", line):
                if name not in NOT_VARIABLES:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {name}")
            for other in others:
                # Including the common role's firewall tasks passes them their inputs (common_firewall_allow_*).
                for name in re.findall(rf"\b{other}_\w+", line):
                    if not name.startswith("common_firewall_allow_") and name not in NOT_VARIABLES:
                        offenders.append(f"{path.relative_to(ROOT)}:{number}: {name}")
    assert offenders == [], offenders


def test_the_check_still_sees_a_variable_in_a_template_and_a_task():
    """The narrowing above leaves the check able to fail: a topology variable in a template's expression and in a
    task line is found, a metric name in the template's text is not."""
    template = ROOT / "roles" / "monitoring" / "templates" / "x.j2"
    assert evaluated(template, 'up{job="x"} stack_up [[ stack_web_hosts ]]') == "[[ stack_web_hosts ]]"
    assert evaluated(template, "{{ mariadb_port }} haproxy_server_status") == "{{ mariadb_port }}"
    task = ROOT / "roles" / "monitoring" / "tasks" / "main.yml"
    assert "stack_db_hosts" in evaluated(task, "    x: \"{{ stack_db_hosts }}\"")
    assert evaluated(task, "# the haproxy_log job") == ""
    assert evaluated(ROOT / "roles" / "haproxy" / "files" / "haproxy.mtail", "counter stack_x") == ""
