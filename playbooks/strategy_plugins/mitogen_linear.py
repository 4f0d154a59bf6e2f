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
