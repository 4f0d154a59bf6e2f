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

The plug-in also decides where each module runs on a server under Mitogen: in the server's interpreter for the
Ansible modules it lists (standard library only, checked here against the installed ansible-core's imports), in a
child forked for the task for every other module. And it loads the plug-ins a play's tasks need (Ansible's filters
and tests, the tasks' action plug-ins) before the workers fork, so that a worker imports none of them again.
"""

import ast
import json
import os
import signal
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


PLANNER_SCRIPT = r"""
import json, os, sys
from ansible.plugins.loader import init_plugin_loader, strategy_loader

init_plugin_loader()
strategy_loader.add_directory(sys.argv[1])
plugin = strategy_loader.get("mitogen_linear", class_only=True)
module = sys.modules[plugin.__module__]

import ansible.modules
import ansible_collections.community.mysql.plugins.modules.mysql_query as mysql_query
import ansible_mitogen.planner

builtin = os.path.dirname(ansible.modules.__file__)

class Invocation:
    def __init__(self, path, task_vars=None, wrap_async=False):
        self.module_path = path
        self.task_vars = task_vars or {}
        self.wrap_async = wrap_async

def forks(path, **kwargs):
    return ansible_mitogen.planner.NewStylePlanner(Invocation(path, **kwargs)).should_fork()

print(json.dumps({
    "names": sorted(getattr(module, "IN_INTERPRETER_MODULES", ())),
    "copy": forks(os.path.join(builtin, "copy.py")),
    "systemd_service": forks(os.path.join(builtin, "systemd_service.py")),
    "apt": forks(os.path.join(builtin, "apt.py")),
    "uri": forks(os.path.join(builtin, "uri.py")),
    "mysql_query": forks(mysql_query.__file__),
    "own_copy": forks(os.path.join(sys.argv[2], "library", "copy.py")),
    "copy_isolated": forks(os.path.join(builtin, "copy.py"), task_vars={"mitogen_task_isolation": "fork"}),
    "copy_async": forks(os.path.join(builtin, "copy.py"), wrap_async=True),
}))
"""


def planner_decisions(tmp_path):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    out = subprocess.run([sys.executable, "-c", PLANNER_SCRIPT, str(ROOT / "playbooks/strategy_plugins"),
                          str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


def test_only_ansibles_own_standard_library_modules_run_in_the_servers_interpreter(tmp_path):
    """A module whose library the run may install (apt's python3-apt, community.mysql's python3-mysqldb, a module of
    the user's own) runs in a forked child that dies with its imports; Ansible's own file, service and command
    modules run in the server's interpreter, without a child's cost. `mitogen_task_isolation: fork` and async
    tasks still fork."""
    decisions = planner_decisions(tmp_path)
    assert decisions["copy"] is False
    assert decisions["systemd_service"] is False
    for forked in ("apt", "uri", "mysql_query", "own_copy", "copy_isolated", "copy_async"):
        assert decisions[forked] is True, forked


def _imports(path):
    """The top-level names of the modules a Python file imports, wherever in the file (try/except included)."""
    names = set()
    for node in ast.walk(ast.parse(Path(path).read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)):
            names.add(str(node.args[0].value).split(".")[0])
    return names


def test_the_modules_run_in_the_interpreter_import_only_the_standard_library_and_ansible(tmp_path):
    """Checked against the installed ansible-core, so that an upgrade that gives one of them a new library fails
    here instead of on a server: each module and every module_utils it pulls in (Mitogen's own scan) imports
    nothing but Python's standard library, Ansible, and what ansible.module_utils.basic (every module's base) does."""
    import ansible.modules
    import ansible_mitogen.module_finder
    from ansible.executor.module_common import _MODULE_UTILS_PATH

    names = planner_decisions(tmp_path)["names"]
    assert "copy" in names and "apt" not in names
    allowed = set(sys.stdlib_module_names) | {"__future__", "ansible"}
    shared = set()
    for fullname, path, _ in ansible_mitogen.module_finder.scan(
            "ansible_module_ping", os.path.join(os.path.dirname(ansible.modules.__file__), "ping.py"),
            (_MODULE_UTILS_PATH,)):
        shared |= _imports(path)
    for name in names:
        path = os.path.join(os.path.dirname(ansible.modules.__file__), f"{name}.py")
        found = {name: _imports(path)}
        for fullname, util, _ in ansible_mitogen.module_finder.scan(f"ansible_module_{name}", path,
                                                                    (_MODULE_UTILS_PATH,)):
            found[fullname] = _imports(util)
        outside = {where: sorted(imported - allowed - shared) for where, imported in found.items()
                   if imported - allowed - shared}
        assert not outside, f"{name} imports a library the run could install: {outside}"


PRELOAD_SCRIPT = r"""
import json, os, sys
from ansible.plugins.loader import init_plugin_loader, strategy_loader

init_plugin_loader()
strategy_loader.add_directory(sys.argv[1])
plugin = strategy_loader.get("mitogen_linear", class_only=True)
module = sys.modules[plugin.__module__]

from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play import Play
from ansible.plugins.loader import action_loader, filter_loader, test_loader
from ansible.vars.manager import VariableManager

loader = DataLoader()
inventory = InventoryManager(loader=loader, sources="localhost,")
play = Play.load({"hosts": "localhost", "gather_facts": False, "tasks": [
    {"ansible.builtin.template": {"src": "a.j2", "dest": "/tmp/a"}},
    {"block": [{"ansible.builtin.copy": {"content": "x", "dest": "/tmp/b"}}],
     "rescue": [{"ansible.builtin.debug": {"msg": "y"}}]},
    {"ansible.builtin.stat": {"path": "/tmp/c"}},
]}, variable_manager=VariableManager(loader=loader, inventory=inventory), loader=loader)

class Iterator:
    _blocks = play.compile()

# What the strategy does in the controller before its workers fork.
module.load_plugins_before_fork(Iterator())

read, write = os.pipe()
pid = os.fork()
if pid == 0:
    # A worker: the plug-ins its task needs (an action, a filter, a test) must already be there.
    before = set(sys.modules)
    action_loader.get("ansible.builtin.template", class_only=True)
    action_loader.get("ansible.builtin.copy", class_only=True)
    action_loader.get("ansible.builtin.debug", class_only=True)
    action_loader.get("ansible.legacy.normal", class_only=True)
    filter_loader.get("ansible.builtin.to_json")
    test_loader.get("ansible.builtin.version")
    imported = sorted(name for name in set(sys.modules) - before if name.startswith(("ansible", "jinja2")))
    os.write(write, json.dumps(imported).encode())
    os._exit(0)
os.close(write)
with os.fdopen(read) as pipe:
    print(pipe.read())
os.waitpid(pid, 0)
"""


def test_a_worker_finds_the_plays_plugins_loaded_by_the_controller():
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    out = subprocess.run([sys.executable, "-c", PRELOAD_SCRIPT, str(ROOT / "playbooks/strategy_plugins")],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    imported_by_the_worker = json.loads(out.splitlines()[-1])
    assert imported_by_the_worker == []


HANG_PLAY = """
- name: Collection modules of sixteen hosts forked on one interpreter at once
  hosts: all
  gather_facts: false
  strategy: mitogen_free
  tasks:
    - name: Make a key in memory
      community.crypto.openssl_privatekey_pipe: {type: ECC, curve: secp256r1}
      register: key
      no_log: true
    - name: Read the key
      community.crypto.openssl_privatekey_info: {content: "{{ key.privatekey }}"}
      no_log: true
    - name: Read a kernel setting
      ansible.posix.sysctl: {name: net.core.somaxconn, value: "4096", sysctl_file: "{{ playbook_dir }}/sysctl.conf"}
      check_mode: true
    - name: Read a setting
      community.general.ini_file: {path: "{{ playbook_dir }}/settings.ini", section: a, option: b, value: c}
      check_mode: true
"""


def test_tasks_of_many_hosts_forked_from_one_interpreter_at_once_never_hang(tmp_path):
    """Each task's module (but Ansible's own that need only the standard library) runs in a child forked from one
    parent interpreter per server and user, which fetches the modules a child imports from the controller. Mitogen's
    fork copied the parent's requests in flight into the child, which then waited forever for a module its parent
    had asked for: a run of many hosts' tasks on one server at once (tasks delegated to the monitoring host) hung.
    Sixteen names for this machine's Python, through one connection as sixteen tasks delegated to one server are
    (molecule's default scenario runs the same on a server). Before the fix, two runs in three hung."""
    interpreter = sys.executable
    (tmp_path / "hosts.yml").write_text("all:\n  hosts:\n" + "".join(
        f"    local-{n:02d}: {{ansible_connection: local, ansible_python_interpreter: {interpreter}}}\n"
        for n in range(16)))
    (tmp_path / "play.yml").write_text(HANG_PLAY)
    (tmp_path / "settings.ini").write_text("[a]\nb = c\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FACT_CACHING_CONNECTION=str(tmp_path / "facts"))
    for attempt in range(4):
        with subprocess.Popen(["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml")],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True) as run:
            try:
                out, _ = run.communicate(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
                out, _ = run.communicate()
                raise AssertionError(f"run {attempt + 1} hung (killed after 90 s):\n{out[-3000:]}") from None
        assert run.returncode == 0, out[-3000:]
        assert out.count("failed=0") == 16, out[-3000:]
