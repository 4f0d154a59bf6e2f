"""The second project: the guestbook (django_stack/tests/guestbook), deployed by the same roles and load balancer
as the shop, proves that the web role's contract is not the shop's. Runs first (file order), on the converged
scenario, before the database tests change the topology."""

import json
import os
import shutil
import subprocess
from pathlib import Path

from stacktest import browse, hosts_of, node, recap, run_playbook, tcp_open

LB = "https://localhost"


def web():
    return node(hosts_of("webservers")[0])


def test_the_project_is_deployed_under_its_own_name():
    host = web()
    assert host.service("guestbook.service").is_running and host.service("guestbook.service").is_enabled
    assert host.file("/srv/guestbook/current/manage.py").exists
    assert not host.file("/srv/shop").exists and not host.file("/etc/shop").exists
    config = json.loads(host.run("cat /etc/guestbook/config.json").stdout)
    assert config["project"] == {"title": "The molecule guestbook"}
    assert config["database"]["name"] == "guestbook" and config["cache"]["key_prefix"] == "guestbook"
    assert "module = guestbook.wsgi:application" in host.file("/etc/guestbook/uwsgi.ini").content_string
    unit = host.file("/etc/systemd/system/guestbook.service").content_string
    assert "STACK_CONFIG=/etc/guestbook/config.json DJANGO_SETTINGS_MODULE=guestbook.settings" in unit
    # Its jobs, not the shop's: the one it asked for, on its leader.
    assert host.service("guestbook-job@clearsessions.timer").is_enabled
    assert not host.file("/etc/systemd/system/guestbook-job@refresh_cache.timer").exists
    # The release holds the stack's package, built from the repository into the release's wheels.
    pip = host.run("/srv/guestbook/current/venv/bin/python -m pip show django-stack")
    assert pip.rc == 0 and "Version: 0.1.0" in pip.stdout
    # No test, bench or tests folder went into the release.
    assert not host.file("/srv/guestbook/current/tests").exists


def test_the_guestbook_answers_through_the_load_balancer_and_a_signature_is_shown():
    home, signed, after = browse(
        ("GET", "/", None),
        ("POST", "/sign/", {"name": "Molecule", "message": "deployed by the same roles"}),
        ("GET", "/", None),
        base=LB,
    )
    assert home["status"] == 200 and "<h1>The molecule guestbook</h1>" in home["body"]
    assert home["headers"]["x-first-pass"] in ("miss", "hit", "stale", "waited")
    assert signed["status"] == 302
    assert "<b>Molecule</b>: deployed by the same roles" in after["body"]


def test_the_page_is_read_from_a_replica_and_its_first_pass_is_shared():
    replicas = hosts_of("db_replicas")

    def selects():
        return {h: int(node(h).run("mariadb -N -B -e \"SHOW GLOBAL STATUS LIKE 'Com_select'\"").stdout.split()[1])
                for h in replicas}

    # A signature bumps the page's version: the next visitor's page is built again, from a replica.
    browse(("GET", "/", None), ("POST", "/sign/", {"name": "Reader", "message": "on a replica"}), base=LB)
    before = selects()
    first, second = browse(("GET", "/", None), base=LB), browse(("GET", "/", None), base=LB)
    after = selects()
    assert "<b>Reader</b>: on a replica" in first[0]["body"]
    assert sum(after.values()) > sum(before.values()), (before, after)
    assert second[0]["headers"]["x-first-pass"] == "hit"


def test_healthz_and_the_cached_view_through_the_load_balancer():
    health, count = browse(("GET", "/healthz", None), ("GET", "/count/", None), base=LB)
    assert health["status"] == 200 and json.loads(health["body"])["status"] == "ok"
    assert count["status"] == 200 and json.loads(count["body"])["entries"] >= 1


def test_haproxy_has_the_web_node_up_and_its_port_is_open_only_to_the_load_balancer():
    lb = node(hosts_of("loadbalancers")[0])
    stat = lb.run("echo 'show stat' | socat - /run/haproxy/admin.sock").stdout
    states = {line.split(",")[1]: line.split(",")[17] for line in stat.splitlines() if line.startswith("web,")}
    assert states.get(hosts_of("webservers")[0]) == "UP", stat
    assert tcp_open(hosts_of("loadbalancers")[0], hosts_of("webservers")[0], 8000)
    assert not tcp_open(hosts_of("db_primary")[0], hosts_of("webservers")[0], 8000, timeout=1.5)


def test_the_release_installs_the_package_from_its_hash_locked_wheels():
    """The package was built into the release's wheels once and every node installs it from the lock."""
    lock = web().run("cat /srv/guestbook/wheels/*/requirements.lock").stdout
    assert "./django_stack-0.1.0-py3-none-any.whl --hash=sha256:" in lock, lock
    assert "./django-5.2" in lock.lower(), lock


def test_the_wheels_were_built_on_the_build_server_and_no_compiler_is_on_the_web_node():
    build = node(hosts_of("buildservers")[0])
    assert build.run("ls /var/cache/django-stack-build/wheels-*.tar.gz").rc == 0
    assert build.package("gcc").is_installed and build.package("libmariadb-dev").is_installed
    assert not any(web().package(name).is_installed for name in ("gcc", "libc6-dev", "python3-dev", "libmariadb-dev"))
    assert web().run("command -v gcc cc cpp").stdout == ""
    wheels = {line.split("/")[0] for line in web().run("ls /srv/guestbook/wheels").stdout.split()}
    assert len(wheels) == 1 and build.file(f"/var/cache/django-stack-build/wheels-{wheels.pop()}.tar.gz").exists


def test_a_source_that_is_not_a_django_project_is_refused_before_any_change(tmp_path):
    (tmp_path / "requirements.txt").write_text("")
    rc, out = run_playbook("playbooks/web.yml", extra_vars={"django_web_project_src": str(tmp_path)})
    assert rc != 0
    assert f"The project's source {tmp_path} has no manage.py" in " ".join(out.split()), out[-3000:]
    changed = recap(out)
    assert changed and all(n == 0 for n in changed.values()), changed
    assert web().service("guestbook.service").is_running


def test_a_project_from_a_git_repository_deploys_the_ref_it_names(tmp_path):
    """The same source committed to a repository: deployed from the tag, it is the same release (the id is a
    hash of the contents), so nothing on the node moves; the commit after the tag (no manage.py) is not used."""
    repo = tmp_path / "guestbook.git"
    shutil.copytree(Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "django_stack" / "tests" / "guestbook", repo,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args], cwd=repo, check=True,
                       capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "the guestbook")
    git("tag", "v1")
    (repo / "manage.py").unlink()
    git("commit", "-q", "-am", "broken after the tag")
    before = web().run("readlink /srv/guestbook/current").stdout.strip()
    rc, out = run_playbook("playbooks/web.yml", extra_vars={"django_web_project_git_repo": f"file://{repo}",
                                                            "django_web_project_git_version": "v1"})
    assert rc == 0, out[-4000:]
    assert web().run("readlink /srv/guestbook/current").stdout.strip() == before
    assert "Check out the project's source at its ref" in out
    rc, out = run_playbook("playbooks/web.yml", extra_vars={"django_web_project_git_repo": f"file://{repo}",
                                                            "django_web_project_git_version": "main"})
    assert rc != 0 and "has no manage.py" in " ".join(out.split()), out[-3000:]
    assert web().run("readlink /srv/guestbook/current").stdout.strip() == before
