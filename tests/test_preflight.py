"""site.yml's preflight play stops a run on a bad inventory or bad secrets before any host is changed.

Every inventory here points at containers that do not exist: if the preflight let a bad inventory through,
the next play could change nothing and would fail to reach them, which these tests tell apart.
"""

import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
FIRST_CHANGING_PLAY = "PLAY [Prepare every server]"
# The preflight's last play, after its checks: the first to reach every host (it reads their facts once per run).
FACTS_PLAY = "PLAY [Read every host's facts once for the whole run]"

GOOD_SECRETS = {
    "vault_django_secret_key": "3f9a0c1e5b7d2468ace13579bdf02468" + "7c1d9e2f4a6b8c0d1e3f5a7b9c",
    "vault_mysql_app_password": "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b",
    "vault_mysql_replication_password": "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
}


def lab_groups():
    return {
        "loadbalancers": ["lb1"],
        "webservers": ["web1", "web2"],
        "db_primary": ["db1"],
        "db_replicas": ["db2", "db3"],
        "cacheservers": ["cache1", "cache2"],
        "mediaservers": ["media1"],
    }


def run_site(tmp_path, groups, secrets, environment="production", site_hostnames=("shop.example.org",)):
    children = {g: {"hosts": {h: None for h in hosts}} for g, hosts in groups.items() if g not in
                ("db_primary", "db_replicas")}
    children["dbservers"] = {"children": {g: {"hosts": {h: None for h in groups.get(g, [])}}
                                          for g in ("db_primary", "db_replicas")}}
    # Laid out like inventories/lab: the environment's variables in group_vars/<environment group>/, which
    # Ansible ranks above the shared group_vars/all.
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"env": {"children": children}}))
    (tmp_path / "group_vars" / "env").mkdir(parents=True)
    (tmp_path / "group_vars" / "env" / "main.yml").write_text(yaml.safe_dump({
        "stack_environment": environment,
        "ansible_connection": "community.docker.docker",
        "ansible_host": "preflight-test-no-such-container",
        "stack_site_hostnames": list(site_hostnames),
    }))
    (tmp_path / "secrets.yml").write_text(yaml.safe_dump(secrets))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FACT_CACHING="memory")
    result = subprocess.run(
        ["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), "-e", f"@{tmp_path / 'secrets.yml'}",
         str(ROOT / "site.yml")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    return result.returncode, result.stdout + result.stderr


def assert_stopped_before_any_change(rc, output, message):
    assert rc != 0
    assert message in " ".join(output.split()), output[-3000:]
    assert FACTS_PLAY not in output and FIRST_CHANGING_PLAY not in output


def test_a_tier_without_hosts_is_refused(tmp_path):
    groups = lab_groups()
    groups["db_primary"] = []
    rc, out = run_site(tmp_path, groups, GOOD_SECRETS)
    assert_stopped_before_any_change(rc, out, "group 'db_primary' has no host")


def test_two_primaries_are_refused(tmp_path):
    groups = lab_groups()
    groups["db_primary"] = ["db1", "db9"]
    rc, out = run_site(tmp_path, groups, GOOD_SECRETS)
    assert_stopped_before_any_change(rc, out, "group 'db_primary' must hold exactly one host, it holds 2")


@pytest.mark.parametrize("first,second,host", [
    ("db_primary", "db_replicas", "db1"),
    ("loadbalancers", "mediaservers", "lb1"),
])
def test_a_host_in_two_tiers_that_cannot_share_is_refused(tmp_path, first, second, host):
    groups = lab_groups()
    groups[second] = groups[second] + [host]
    rc, out = run_site(tmp_path, groups, GOOD_SECRETS)
    assert_stopped_before_any_change(rc, out, f"{host} cannot be in both '{first}' and '{second}'")


def test_a_missing_secret_is_refused(tmp_path):
    secrets = {k: v for k, v in GOOD_SECRETS.items() if k != "vault_mysql_app_password"}
    rc, out = run_site(tmp_path, lab_groups(), secrets)
    assert_stopped_before_any_change(rc, out, "Secret 'vault_mysql_app_password' is missing")


def test_a_short_django_secret_key_is_refused(tmp_path):
    secrets = dict(GOOD_SECRETS, vault_django_secret_key="0123456789abcdef0123")
    rc, out = run_site(tmp_path, lab_groups(), secrets)
    assert_stopped_before_any_change(rc, out, "Secret 'vault_django_secret_key' is missing or shorter than 50")


def test_a_site_without_a_name_is_refused(tmp_path):
    rc, out = run_site(tmp_path, lab_groups(), GOOD_SECRETS, site_hostnames=[])
    assert_stopped_before_any_change(rc, out, "stack_site_hostnames is empty")


def test_an_example_secret_is_refused_outside_the_lab(tmp_path):
    secrets = dict(GOOD_SECRETS, vault_django_secret_key="CHANGE-ME-django-secret-key-of-at-least-50-random-characters")
    rc, out = run_site(tmp_path, lab_groups(), secrets)
    assert_stopped_before_any_change(rc, out, "Secret 'vault_django_secret_key' still holds an example value")


def test_the_example_vault_file_is_refused_as_is(tmp_path):
    example = ROOT / "inventories/example-production/group_vars/production/vault.yml.example"
    rc, out = run_site(tmp_path, lab_groups(), yaml.safe_load(example.read_text()))
    assert_stopped_before_any_change(rc, out, "still holds an example value")


def test_a_good_inventory_passes_the_preflight(tmp_path):
    rc, out = run_site(tmp_path, lab_groups(), GOOD_SECRETS)
    assert FACTS_PLAY in out, out[-3000:]
    # The hosts do not exist: nothing past the preflight could run. With pipelining the docker connection
    # reports that as the first module failing, without it as the host unreachable.
    assert "No such container: preflight-test-no-such-container" in out or "UNREACHABLE" in out


def test_example_secrets_are_accepted_in_the_lab(tmp_path):
    secrets = dict(GOOD_SECRETS, vault_django_secret_key="CHANGE-ME-django-secret-key-of-at-least-50-random-characters")
    rc, out = run_site(tmp_path, lab_groups(), secrets, environment="lab")
    assert FACTS_PLAY in out, out[-3000:]


def test_a_backup_host_without_its_secrets_is_refused(tmp_path):
    groups = lab_groups()
    groups["backupservers"] = ["backup1"]
    rc, out = run_site(tmp_path, groups, GOOD_SECRETS)
    assert_stopped_before_any_change(rc, out, "Secret 'vault_backup_repository_password' is missing")


def test_a_backup_host_that_is_a_db_server_is_refused(tmp_path):
    groups = lab_groups()
    groups["backupservers"] = ["db3"]
    secrets = dict(GOOD_SECRETS, vault_backup_repository_password="5d1c8e2f7a3b9c0d4e6f8a1b3c5d7e9f",
                   vault_backup_rest_password_seed="8f7e6d5c4b3a29180f1e2d3c4b5a6978")
    rc, out = run_site(tmp_path, groups, secrets)
    assert_stopped_before_any_change(rc, out, "db3 cannot be in both 'backupservers' and 'dbservers'")
