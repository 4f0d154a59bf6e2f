"""The strategy plug-in (playbooks/strategy_plugins/mitogen_linear.py) reads the installed collections' folders
once per run, in the controller, instead of once per task.

Mitogen lists every installed collection (reading each one's metadata) the first time a process runs a module
from a collection, and keeps the list in that process. Ansible runs each task in a new worker forked from the
controller, so every task that used a collection's module listed them all again: half of the workers' CPU time in
a `site.yml` run with nothing to change (bench/results/REPORT.md, "Ansible").

The real plug-in is loaded by Ansible's plug-in loader, with Mitogen installed, in a Python of its own (the plug-in
changes Mitogen's planner for the whole process). The strategy's step before its workers fork is run, then three
workers are forked as Ansible's are, and each must take the folders from the controller without listing the
collections again.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = r"""
import json, os, sys
from ansible.plugins.loader import init_plugin_loader, strategy_loader

init_plugin_loader()
strategy_loader.add_directory(sys.argv[1])
plugin = strategy_loader.get("mitogen_linear", class_only=True)
module = sys.modules[plugin.__module__]

import ansible.collections.list
import ansible_mitogen.planner

listed = sorted(path.decode("utf-8") for path in ansible.collections.list.list_collection_dirs())
# What the strategy does in the controller before any worker forks (a release without the fix has no such step).
getattr(module, "_installed_collection_dirs", tuple)()

calls = []
real = ansible.collections.list.list_collection_dirs
def counting(*args, **kwargs):
    calls.append(os.getpid())
    return real(*args, **kwargs)
ansible.collections.list.list_collection_dirs = counting

class Invocation:
    def __init__(self):
        self._extra_sys_paths = set()

workers = []
for _ in range(3):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        invocation = Invocation()
        ansible_mitogen.planner._load_collections(invocation)
        os.write(write, json.dumps({"listed_again": len(calls), "paths": sorted(invocation._extra_sys_paths)}).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        workers.append(json.loads(pipe.read()))
    os.waitpid(pid, 0)
print(json.dumps({"listed": listed, "workers": workers}))
"""


def test_a_worker_takes_the_collection_folders_from_the_controller_instead_of_listing_them():
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT / "playbooks/strategy_plugins")], cwd=ROOT,
                         env=env, capture_output=True, text=True, check=True).stdout
    result = json.loads(out.splitlines()[-1])
    assert any(path.endswith(os.path.join("community", "mysql")) for path in result["listed"]), result["listed"]
    assert len(result["workers"]) == 3
    for worker in result["workers"]:
        assert worker["listed_again"] == 0, "a worker listed the installed collections again"
        assert worker["paths"] == result["listed"]
