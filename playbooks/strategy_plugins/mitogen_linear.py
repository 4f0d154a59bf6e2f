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
    class StrategyModule(ansible_mitogen.strategy.StrategyMixin, _Linear):
        """The linear strategy over Mitogen's connections."""
else:
    Display().warning("Mitogen for Ansible is not installed (pip install mitogen): running the plain linear "
                      "strategy, which is slower.")

    class StrategyModule(_Linear):
        """Ansible's own linear strategy."""
