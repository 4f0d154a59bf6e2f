"""playbooks/lab-up.yml refuses, before it creates anything, a lab that this machine's inotify limit cannot boot.

Every lab container runs systemd, which with its services holds about seven inotify instances, all counted against
root's one limit (fs.inotify.max_user_instances, 128 by default). CI ran the default scenario's 13 containers and
the db scenario's 7 side by side: past the limit, the db scenario's containers kept restarting ("cannot exec in a
deleted state") and a default scenario's host went unreachable. scripts/ensure-engine.sh raises the limit; the
playbook checks it against every lab container running and to be created.

The lab asked for here is never created: its image does not exist, so a playbook without the check fails at the
image instead (and the test with it), and a lab the limit holds stops there too.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "test-inotify-"
MISSING_IMAGE = "django-stack/debian:no-such-release"

pytestmark = pytest.mark.skipif(
    shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode != 0,
    reason="no container engine answers (make engine)")


def lab_up(tmp_path, hosts: int) -> subprocess.CompletedProcess:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {f"node{i}": {} for i in range(hosts)}}}))
    return subprocess.run(
        ["ansible-playbook", "-i", str(inventory), "playbooks/lab-up.yml",
         "-e", f"lab_image={MISSING_IMAGE}", "-e", f"lab_container_prefix={PREFIX}",
         "-e", "lab_network=test-inotify", "-e", "lab_subnet="],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"})


def nothing_created():
    containers = subprocess.run(["docker", "ps", "-aq", "--filter", f"name={PREFIX}"], capture_output=True,
                                text=True, check=True).stdout.split()
    networks = subprocess.run(["docker", "network", "ls", "-q", "--filter", "name=test-inotify"],
                              capture_output=True, text=True, check=True).stdout.split()
    return containers == [] and networks == []


def test_a_lab_past_the_machines_inotify_limit_is_refused_before_anything_is_created(tmp_path):
    limit = int(Path("/proc/sys/fs/inotify/max_user_instances").read_text())
    done = lab_up(tmp_path, hosts=limit // 8 + 1)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert f"This machine's fs.inotify.max_user_instances is {limit}" in output, output[-3000:]
    assert "Nothing was created" in output
    assert "Look for the base image" not in output  # stopped before any later task
    assert nothing_created()


def test_a_lab_within_the_limit_passes_the_check(tmp_path):
    done = lab_up(tmp_path, hosts=2)
    output = done.stdout + done.stderr
    assert "fs.inotify.max_user_instances is" not in output, output[-3000:]
    # It goes on to the next check, which stops it: the image asked for does not exist.
    assert done.returncode != 0
    assert f"The base image {MISSING_IMAGE} does not exist" in output, output[-3000:]
    assert nothing_created()
