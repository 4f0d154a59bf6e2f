"""The collection, installed from the tarball `make collection` built into a directory that is not this
repository, runs site.yml against the scenario's servers and finds nothing to change: the installed roles,
playbooks and group_vars build the very stack the repository's site.yml built. The user's ansible.cfg is the one
README recommends (fact cache, Mitogen through the collection's own strategy plug-in); molecule's db scenario runs it
under Ansible's own strategies, as a user without Mitogen would (its lane of `make test` has the minutes to spare
that this one has not). Runs first (file order), before the tests that change the topology."""

import os
import re
import shutil
import time
from pathlib import Path

import yaml

from stacktest import changed_tasks, collection_site, container, hosts_of, installed_collection, node, recap

ROOT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
# When the installed collection's run with nothing to change started (the containers share this machine's clock).
NO_CHANGE_RUN_STARTED = []


def test_the_release_holds_what_the_web_nodes_run_and_no_tests_or_benchmarks():
    """django_web_project_exclude (tests, testing, bench) is left out of the release, so the repository's app/
    and the collection's copy of it (which has no tests) are the same release."""
    for web in hosts_of("webservers"):
        for folder in ("tests", "testing", "bench"):
            assert not node(web).file(f"/srv/shop/current/{folder}").exists, (web, folder)
        assert node(web).file("/srv/shop/current/manage.py").exists


def test_the_installed_collection_converges_the_stack_with_no_change(tmp_path):
    # A user's directory: an ansible.cfg of their own (README's, "The Ansible collection"), the collection installed,
    # an inventory and group_vars.
    env = installed_collection(tmp_path)
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    lab = ROOT / "inventories" / "lab"
    hosts = yaml.safe_load((lab / "hosts.yml").read_text())
    # The scenario's hosts that are in no tier yet (web3, db4) are in the inventory too, in the
    # environment's group (its variables, secrets included), as an operator's spare host would be. (What molecule
    # gives every host, such as the node exporter's filesystems, is in inventories/lab/group_vars/all.)
    spare = {h: None for h in hosts_of("all") if h not in hosts_of("lab")}
    hosts["lab"]["hosts"] = spare
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    # The environment's variables and secrets as the lab has them; the hosts are this scenario's containers.
    shutil.copytree(lab / "group_vars", inventory / "group_vars", dirs_exist_ok=True)
    (inventory / "host_vars").mkdir()
    for host in hosts_of("all"):
        (inventory / "host_vars" / f"{host}.yml").write_text(yaml.safe_dump({
            "ansible_host": container(host), "ansible_python_interpreter": "/usr/bin/python3"}))
    NO_CHANGE_RUN_STARTED.append(int(time.time()))
    out = collection_site(tmp_path, env, inventory, "collection-site.log")
    # Through Mitogen: the collection's plug-in found it (it warns and runs Ansible's own strategy where it cannot).
    assert "Mitogen for Ansible is not installed" not in out, out[-3000:]
    changed = recap(out)
    assert set(changed) >= set(hosts_of("all")), out[-3000:]
    assert all(n == 0 for n in changed.values()), changed_tasks(out)


def test_the_run_with_nothing_to_change_reloads_no_systemd():
    """systemd reads the units again only in a run that wrote one: the run above asked no server's systemd for a
    daemon-reload (each one costs the server's CPU in every run, and holds its systemd while it lasts). Requests from
    a unit's own process (Debian's package upgrades) are not the run's."""
    assert NO_CHANGE_RUN_STARTED, "the run with nothing to change did not run"
    for host in hosts_of("all"):
        journal = node(host).run("journalctl _PID=1 --since=@%s -o cat --no-pager", str(NO_CHANGE_RUN_STARTED[0]))
        assert journal.rc == 0, journal.stderr
        # "Reload requested from client PID 1316 ('systemctl') (unit -.slice)...": Ansible's process is in no
        # service (-.slice under `docker exec`, a session-N.scope over SSH); a package upgrade's is (.service).
        asked = [line for line in journal.stdout.splitlines()
                 if re.match(r"Reload(ing)? requested from client", line)
                 and not re.search(r"\(unit [^)]*\.service\)", line)]
        assert not asked, (host, asked)
