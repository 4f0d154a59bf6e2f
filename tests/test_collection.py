"""The collection, installed from its built tarball into a directory that is not this repository, runs there.

`make collection` builds dist/django_stack-stack-<version>.tar.gz; each test installs it with ansible-galaxy into
a temporary directory holding nothing but an inventory and its group_vars, and runs
`ansible-playbook django_stack.stack.site` there, with no ansible.cfg, roles path or playbook of this repository.
(the directory's own ansible.cfg only says where collections go and turns pipelining on). The inventory's hosts are containers that do not exist: the preflight (the collection's own group_vars and
playbooks) must let a good inventory through to the first play that would change a host, and stop a bad one.
Molecule's default scenario runs the same installed collection against real servers (test_aa_collection.py).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
FIRST_CHANGING_PLAY = "PLAY [Prepare every server]"
# The preflight's last play, the first to reach every host (it reads their facts once for the whole run).
FACTS_PLAY = "PLAY [Read every host's facts once for the whole run]"


def tarball() -> Path:
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    path = ROOT / "dist" / f"django_stack-stack-{version}.tar.gz"
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make collection` first (make test-control does)")
    return path


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A directory with the collection installed in collections/, and nothing of this repository."""
    where = tmp_path_factory.mktemp("elsewhere")
    # The user's own ansible.cfg: where collections go, and pipelining (one process per task on a host).
    (where / "ansible.cfg").write_text("[defaults]\ncollections_path = collections\npipelining = true\n")
    done = subprocess.run(["ansible-galaxy", "collection", "install", "--no-deps", "-p", str(where / "collections"),
                           str(tarball())], cwd=where, capture_output=True, text=True, timeout=300,
                          env=clean_env(where))
    assert done.returncode == 0, done.stdout + done.stderr
    root = where / "collections" / "ansible_collections" / "django_stack" / "stack"
    assert (root / "playbooks" / "site.yml").exists() and (root / "roles" / "django_web").is_dir()
    # What a user gets: the package and the shop (the default project) come with the roles; tests do not.
    assert (root / "django_stack" / "pyproject.toml").exists() and (root / "app" / "manage.py").exists()
    assert not (root / "molecule").exists() and not (root / "app" / "tests").exists()
    return where


def clean_env(where: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(where / "collections") + ":" + os.pathsep.join(default_paths()),
               ANSIBLE_NOCOLOR="1", HOME=str(where))
    return env


def default_paths() -> list[str]:
    """Where ansible's own collections are (community.general, community.mysql, ...): the installed ansible."""
    import ansible_collections  # noqa: PLC0415 - the collections the ansible package ships
    return [str(Path(ansible_collections.__path__[0]).parent)]


def inventory(where: Path, name: str, groups: dict, secrets: dict) -> Path:
    directory = where / name
    children = {g: {"hosts": {h: None for h in hosts}} for g, hosts in groups.items()
                if g not in ("db_primary", "db_replicas")}
    children["dbservers"] = {"children": {g: {"hosts": {h: None for h in groups.get(g, [])}}
                                          for g in ("db_primary", "db_replicas")}}
    (directory / "group_vars" / "mine").mkdir(parents=True)
    (directory / "hosts.yml").write_text(yaml.safe_dump({"mine": {"children": children}}))
    (directory / "group_vars" / "mine" / "main.yml").write_text(yaml.safe_dump({
        "stack_environment": "production",
        "ansible_connection": "community.docker.docker",
        "ansible_host": "collection-test-no-such-container",
        "stack_site_hostnames": ["www.example.org"],
        **secrets,
    }))
    return directory / "hosts.yml"


def run(where: Path, hosts: Path) -> tuple[int, str]:
    done = subprocess.run(["ansible-playbook", "-i", str(hosts), "django_stack.stack.site"], cwd=where,
                          env=clean_env(where), capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


GROUPS = {
    "loadbalancers": ["lb1"], "webservers": ["web1", "web2", "web3"], "db_primary": ["db1"],
    "db_replicas": ["db2"], "cacheservers": ["cache1"], "mediaservers": ["media1"],
}
SECRETS = {
    "vault_django_secret_key": "5d2c8e1f7a3b9c0d4e6f8a1b3c5d7e9f" + "0a2b4c6d8e1f3a5b7c9d",
    "vault_mysql_app_password": "7f6e5d4c3b2a19087f6e5d4c3b2a1908",
    "vault_mysql_replication_password": "1a2b3c4d5e6f708192a3b4c5d6e7f809",
}


def test_the_installed_collection_runs_site_from_another_directory(installed):
    rc, out = run(installed, inventory(installed, "good", GROUPS, SECRETS))
    # The preflight's checks passed (the collection's group_vars and playbooks were found), then its play that
    # reads every host's facts could not reach the containers that do not exist.
    assert "PLAY [Check the inventory and the secrets]" in out, out[-3000:]
    assert FACTS_PLAY in out and ("No such container" in out or "UNREACHABLE" in out), out[-3000:]
    assert "Inventory error" not in out and "Secret '" not in out
    assert rc != 0


def test_the_installed_collection_refuses_a_bad_inventory_before_any_change(installed):
    groups = dict(GROUPS, db_primary=["db1", "db9"])
    rc, out = run(installed, inventory(installed, "bad", groups, SECRETS))
    assert rc != 0
    assert "group 'db_primary' must hold exactly one host, it holds 2" in " ".join(out.split()), out[-3000:]
    assert FACTS_PLAY not in out and FIRST_CHANGING_PLAY not in out


def test_the_installed_roles_validate_their_inputs(installed):
    """meta/argument_specs.yml travels with the roles: a wrong type is refused by name."""
    play = installed / "play.yml"
    play.write_text(yaml.safe_dump([{
        "name": "Use a role of the collection with a bad input", "hosts": "localhost", "gather_facts": True,
        "roles": [{"role": "django_stack.stack.memcached", "memcached_port": "not-a-port"}],
    }]))
    done = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", "-e",
                           f"ansible_python_interpreter={sys.executable}", str(play)], cwd=installed,
                          env=clean_env(installed), capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "memcached_port" in done.stdout and "argument" in done.stdout.lower(), done.stdout[-2000:]
