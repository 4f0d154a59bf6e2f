"""Every port and path that two tiers share is one variable: changed in group_vars, both sides move.

Renders each side's role inputs, as its tier's playbook maps them from the topology, for the lab inventory with
`ansible -m debug` (run on the control node, no host is contacted), with the shared variable changed as an
operator would change it.
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent

# (shared variable, new value, {host: [expressions of that host's role inputs that must carry the value]})
CASES = [
    ("stack_db_port", 3307, {
        "db1": ["mariadb_port"],
        "db2": ["mariadb_port"],
        "web1": ["django_web_db_primary.port", "django_web_db_replicas[0].port", "django_web_db_replicas[1].port"],
    }),
    ("stack_cache_port", 11311, {
        "cache1": ["memcached_port"],
        "web1": ["django_web_cache_servers[0].split(':')[1] | int", "django_web_cache_servers[1].split(':')[1] | int"],
    }),
    ("stack_web_port", 8100, {
        "web1": ["django_web_port"],
        "lb1": ["haproxy_web_port"],
    }),
    ("stack_media_port", 8081, {
        "media1": ["nginx_media_port"],
        "lb1": ["haproxy_media_port"],
        "web1": ["django_web_media_servers[0] | regex_search(':([0-9]+)/', '\\\\1') | first | int"],
    }),
    ("stack_media_path", "/uploads/", {
        "media1": ["nginx_media_url_path"],
        "lb1": ["haproxy_media_path"],
        "web1": ["django_web_media_url", "django_web_media_servers[0] | regex_search('/uploads/$')"],
    }),
]


PLAYBOOK_OF = {"db": "database.yml", "cache": "cache.yml", "web": "web.yml", "lb": "loadbalancer.yml",
               "media": "media.yml"}


def role_inputs(host):
    """The role inputs the host's tier playbook maps (its plays' vars files and the `vars` of its role)."""
    plays = yaml.safe_load((ROOT / "playbooks" / PLAYBOOK_OF[host.rstrip("0123456789")]).read_text())
    inputs = {}
    for play in plays:
        for vars_file in play.get("vars_files", []):
            inputs.update(yaml.safe_load((ROOT / "playbooks" / vars_file).read_text()))
        for role in play.get("roles", []):
            inputs.update(role.get("vars", {}))
    return inputs


def render(host, expressions, extra):
    msg = "{{ [" + ", ".join(expressions) + "] | to_json }}"
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FACT_CACHING="memory", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    cmd = ["ansible", host, "-i", str(ROOT / "inventories/lab/hosts.yml"), "-m", "ansible.builtin.debug",
           "-a", f"msg={msg}", "-e", json.dumps(role_inputs(host)),
           "-e", json.dumps({**extra, "stack_private_address": "192.0.2.10"})]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"][host]["msg"]
    return json.loads(result) if isinstance(result, str) else result


@pytest.mark.parametrize("variable,value,sides", CASES, ids=[c[0] for c in CASES])
def test_a_shared_port_or_path_moves_both_sides(variable, value, sides):
    for host, expressions in sides.items():
        assert render(host, expressions, {}) != [value] * len(expressions), f"{host} already uses {value}"
        assert render(host, expressions, {variable: value}) == [value] * len(expressions), (host, expressions)


def test_no_role_input_hard_codes_a_shared_port():
    """The playbooks and group_vars name the shared ports only through the stack_* variables."""
    assert role_inputs("web1") and role_inputs("db1"), "the playbooks map the topology to their roles' inputs"
    pattern = re.compile(r"(?<![\w.])(3306|11211|8000)(?![\w.])|['\"]/media/['\"]")
    offenders = []
    for path in [*ROOT.glob("playbooks/**/*.yml"), *ROOT.glob("group_vars/all/*.yml"), ROOT / "site.yml"]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if pattern.search(code) and not re.match(r"\s*stack_\w+_(port|path):", code):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == [], offenders
