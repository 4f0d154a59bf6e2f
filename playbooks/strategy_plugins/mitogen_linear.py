# The linear strategy, run through Mitogen for Ansible when it is installed (requirements/control.txt has it).
#
# Mitogen keeps one Python interpreter per server for the whole run and caches the modules it has sent, so a task
# no longer starts a new interpreter that recompiles Ansible's module_utils on the server: about 0.3 s of a
# server's CPU per task with `docker exec` or SSH, a few milliseconds with Mitogen. A run with nothing to change
# is several times faster (bench/results/REPORT.md, "Ansible").
#
# Without Mitogen (`pip install ansible` alone), or with ANSIBLE_STRATEGY=linear, runs use Ansible's own linear
# strategy: same tasks, same results, slower. Mitogen takes over the connections it knows by their short names
# (ssh, docker, local, ...); others (community.docker.docker) run as usual.
from __future__ import annotations

import os

DOCUMENTATION = """
    name: mitogen_linear
    short_description: Ansible's linear strategy, through Mitogen when it is installed
    description:
      - Runs the linear strategy with Mitogen for Ansible's persistent interpreters when the C(ansible_mitogen)
        package can be imported, and Ansible's own linear strategy (with a warning) when it cannot.
    author: django-stack developers
"""

from ansible.plugins.loader import strategy_loader
from ansible.utils.display import Display

try:
    import ansible_mitogen.loaders  # noqa: F401  (imported first, as Mitogen's own strategy plug-ins do)
    import ansible_mitogen.strategy
except ImportError:
    ansible_mitogen = None

_Linear = strategy_loader.get("ansible.builtin.linear", class_only=True)

if ansible_mitogen is not None:
    import ansible.collections.list
    import ansible_mitogen.planner

    # Mitogen lists the installed collections' folders (reading every collection's metadata: the `ansible` package
    # installs about a hundred) the first time a process runs a module from a collection, and keeps the list in
    # that process. Each task runs in a new worker forked from the controller, so every task did it again: half of
    # the workers' CPU time in a run with nothing to change. The list is the same for the whole run (the collection
    # paths are fixed when the playbook is loaded): read once here, in the controller, before any worker forks.
    _collection_dirs: tuple[str, ...] | None = None

    def _installed_collection_dirs() -> tuple[str, ...]:
        global _collection_dirs
        if _collection_dirs is None:
            _collection_dirs = tuple(path.decode("utf-8")
                                     for path in ansible.collections.list.list_collection_dirs())
        return _collection_dirs

    def _load_collections(invocation) -> None:
        invocation._extra_sys_paths.update(_installed_collection_dirs())

    ansible_mitogen.planner._load_collections = _load_collections

    # Where a task's module runs on the server. Mitogen runs a module in the server's long-lived interpreter unless
    # it finds a reason to fork a child for it; run in the interpreter, whatever the module imported stays there for
    # the rest of the run. That is wrong for a module whose library the run itself installs: community.mysql ran
    # before python3-mysqldb was installed (a lost primary restored onto a new host) and kept failing with "A MySQL
    # module is required" after the install, because its failed import stayed. Mitogen does not see that
    # collections' module_utils are outside Ansible, so it ran those modules in the interpreter too.
    #
    # So every module runs in a child forked for the task, which dies with what it imported, except Ansible's own
    # modules that import nothing beyond Python's standard library and what every module shares
    # (ansible.module_utils.basic): nothing they import can be installed by the run. They are most of a run's tasks
    # (files, templates, services, commands), and a forked child costs a server about 20 ms of CPU per task: two
    # fifths of the servers' CPU in a run with nothing to change (51 CPU-seconds against 31 in the lab).
    # tests/test_mitogen_strategy.py checks every name here against the installed ansible-core's imports.
    # `mitogen_task_isolation: fork` (a host, group or play variable) still forks every task, as in Mitogen.
    IN_INTERPRETER_MODULES = frozenset({
        "assemble", "blockinfile", "command", "copy", "cron", "debconf", "dpkg_selections", "file", "find",
        "getent", "git", "group", "hostname", "iptables", "known_hosts", "lineinfile", "mount_facts", "ping",
        "replace", "service", "service_facts", "slurp", "stat", "subversion", "systemd", "systemd_service",
        "sysvinit", "tempfile", "user",
    })

    import ansible.modules

    _ANSIBLE_MODULES_DIR = os.path.dirname(os.path.abspath(ansible.modules.__file__))

    def runs_in_interpreter(module_path: str) -> bool:
        """Whether the module at this path is one of Ansible's own that need no child process of their own."""
        folder, name = os.path.split(os.path.abspath(module_path))
        stem, extension = os.path.splitext(name)
        return folder == _ANSIBLE_MODULES_DIR and extension == ".py" and stem in IN_INTERPRETER_MODULES

    def _should_fork(planner) -> bool:
        invocation = planner._inv
        return (bool(invocation.wrap_async)
                or invocation.task_vars.get("mitogen_task_isolation") == "fork"
                or not runs_in_interpreter(invocation.module_path))

    ansible_mitogen.planner.NewStylePlanner.should_fork = _should_fork

    class StrategyModule(ansible_mitogen.strategy.StrategyMixin, _Linear):
        """The linear strategy over Mitogen's connections."""

        def run(self, iterator, play_context, result=0):
            _installed_collection_dirs()
            return super().run(iterator, play_context, result)
else:
    Display().warning("Mitogen for Ansible is not installed (pip install mitogen): running the plain linear "
                      "strategy, which is slower.")

    class StrategyModule(_Linear):
        """Ansible's own linear strategy."""
