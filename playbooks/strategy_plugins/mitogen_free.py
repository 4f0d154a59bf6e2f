# Ansible's free strategy, with what mitogen_linear does for the linear one: through Mitogen's connections when the
# run's strategy is mitogen_linear and Mitogen is installed, with the plug-ins loaded before the workers fork, and
# with the tasks skipped by their condition, or whose action needs no server, done in the controller
# (mitogen_linear.py says how and why).
#
# site.yml's plays of the tiers that need nothing from one another (playbooks/tiers.yml) use it: each host goes
# through its own tier's role at its own pace, so a server installing its packages no longer waits for a server of
# another tier to finish its own, and both CPUs of a small control node and lab have work.
#
# A run whose strategy is not mitogen_linear (ANSIBLE_STRATEGY=ansible.builtin.linear, say) gets Ansible's own free
# strategy here, unchanged: the run stays without Mitogen and without the controller's shortcuts.
from __future__ import annotations

import sys
import time

from ansible import constants
from ansible.plugins.loader import strategy_loader
from ansible.utils.fqcn import add_internal_fqcns

DOCUMENTATION = """
    name: mitogen_free
    short_description: Ansible's free strategy, through Mitogen when the run uses mitogen_linear
    description:
      - Runs Ansible's free strategy (each host at its own pace) with mitogen_linear's connections and controller
        work when the run's strategy is mitogen_linear, and Ansible's own free strategy otherwise.
    author: django-stack developers
"""

_Free = strategy_loader.get("ansible.builtin.free", class_only=True)

# How long the strategy waits for a worker's result before it looks at every host again.
RESULT_WAIT_SECONDS = 0.02


class WaitForResults:
    """Strategy mixin: the free strategy looks at every host for a task it can start, reads the results that came
    in, sleeps a millisecond, and starts again: a thousand times a second while every host waits for its worker,
    each time copying each host's state to peek at its next task (15,000 peeks in the lab's first side-by-side play
    of a run with nothing to change, 1.1 CPU-seconds of the control node). Here, once a look at the hosts started
    all it could and no result has come in, the strategy waits for one (a check every millisecond that costs
    nothing) for up to RESULT_WAIT_SECONDS, then looks at the hosts again, as before. A meta task (run by the
    strategy itself, with no result to wait for) is followed by a look without waiting."""

    _ran_meta = False

    def _execute_meta(self, task, play_context, iterator, target_host):
        self._ran_meta = True
        return super()._execute_meta(task, play_context, iterator, target_host)

    def _process_pending_results(self, iterator, one_pass=False, max_passes=None):
        if not self._ran_meta:
            deadline = time.monotonic() + RESULT_WAIT_SECONDS
            while self._pending_results > 0 and not self._results and time.monotonic() < deadline:
                time.sleep(constants.DEFAULT_INTERNAL_POLL_INTERVAL)
        self._ran_meta = False
        return super()._process_pending_results(iterator, one_pass, max_passes)


if constants.DEFAULT_STRATEGY in ("mitogen_linear", *add_internal_fqcns(("mitogen_linear",))):
    # Loading the linear plug-in sets up, once per run, what it shares with this one (Mitogen's planner, the
    # collections' folders, the compiled templates' cache).
    _linear = sys.modules[strategy_loader.get("mitogen_linear", class_only=True).__module__]

    if _linear.ansible_mitogen is not None:
        import ansible_mitogen.strategy

        class StrategyModule(WaitForResults, _linear.InController, ansible_mitogen.strategy.StrategyMixin, _Free):
            """The free strategy over Mitogen's connections."""

            def run(self, iterator, play_context, result=0):
                _linear._installed_collection_dirs()
                _linear.load_plugins_before_fork(iterator)
                return super().run(iterator, play_context, result)
    else:
        class StrategyModule(WaitForResults, _linear.InController, _Free):
            """Ansible's own free strategy, with the controller's shortcuts."""

            def run(self, iterator, play_context, result=0):
                _linear.load_plugins_before_fork(iterator)
                return super().run(iterator, play_context, result)
else:
    class StrategyModule(_Free):
        """Ansible's own free strategy: the run does not use mitogen_linear."""
