"""The strategy plug-in (playbooks/strategy_plugins/mitogen_linear.py) evaluates a task's condition in the
controller and skips the task there where it is false, without forking a worker for it; the results, callbacks,
registered variables, warnings and errors must be those of Ansible's own linear strategy.

One playbook with conditions of every kind (false on some hosts, true, failing, a loop's, a block's, an
include's, a handler's, run_once, registered and read back, a deprecated form that warns) runs against four
inventory hosts that are this machine (local connection, nothing else is contacted), four ways: through the
plug-in; through the plug-in with STACK_CONDITIONS_IN_WORKERS=1 (every condition in a worker, as before); through
ansible.builtin.linear; and through the plug-in with Ansible's task executor failing in the controller (every task
must then go to a worker). A callback of this test records every callback event with its result, and counts the
workers Ansible forks: the events must be the same all four ways, and the plug-in must fork exactly one worker
fewer for each host-task skipped by a plain condition, and no fewer.
"""

import json
import os
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent

HOSTS = ["alpha", "bravo", "charlie", "delta"]

RECORDER = r'''
from __future__ import annotations
import json
import os
from ansible.executor.process.worker import WorkerProcess
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: recorder
type: aggregate
short_description: records every result and counts the workers the strategy forks
requirements: [enable]
"""

FORKED = []
_start = WorkerProcess.start


def start(self, *args, **kwargs):
    FORKED.append([self._host.name, self._task.get_name()])
    return _start(self, *args, **kwargs)


WorkerProcess.start = start

if os.environ.get("RECORDER_BREAK_CONTROLLER") == "1":
    # The task executor fails wherever it runs in the controller (never in a worker, forked later).
    from ansible.executor import task_executor
    _controller = os.getpid()
    _init = task_executor.TaskExecutor.__init__

    def broken_init(self, *args, **kwargs):
        if os.getpid() == _controller:
            raise RuntimeError("the task executor cannot run here")
        return _init(self, *args, **kwargs)

    task_executor.TaskExecutor.__init__ = broken_init
TIMING = {"start", "end", "delta", "duration"}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "recorder"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.events = []

    def _record(self, event, result):
        data = json.loads(json.dumps(result._result, default=str, sort_keys=True))
        for item in [data] + data.get("results", []):
            for key in TIMING:
                item.pop(key, None)
        self.events.append([event, result._host.get_name(), result._task.get_name(), data])

    def v2_runner_on_start(self, host, task):
        self.events.append(["start", host.get_name(), task.get_name(), None])

    def v2_runner_on_ok(self, result):
        self._record("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record("failed" + (" (ignored)" if ignore_errors else ""), result)

    def v2_runner_on_skipped(self, result):
        self._record("skipped", result)

    def v2_runner_on_unreachable(self, result):
        self._record("unreachable", result)

    def v2_runner_item_on_ok(self, result):
        self._record("item ok", result)

    def v2_runner_item_on_skipped(self, result):
        self._record("item skipped", result)

    def v2_runner_item_on_failed(self, result):
        self._record("item failed", result)

    def v2_playbook_on_stats(self, stats):
        summary = {host: stats.summarize(host) for host in sorted(stats.processed)}
        with open(os.environ["RECORDER_OUT"], "w") as out:
            json.dump({"forked": FORKED, "events": self.events, "stats": summary}, out)
'''

INCLUDED = [
    {"name": "An included task", "ansible.builtin.debug": {"msg": "included on {{ inventory_hostname }}"}},
    {"name": "An included task's own condition", "ansible.builtin.debug": {"msg": "x"},
     "when": "inventory_hostname == 'alpha'"},
]

PLAY = {
    "name": "Conditions of every kind",
    "hosts": "all",
    "gather_facts": False,
    "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
    "handlers": [
        {"name": "A handler with a condition", "ansible.builtin.debug": {"msg": "handled"},
         "when": "weight > 2"},
    ],
    "tasks": [
        {"name": "False on some hosts", "ansible.builtin.set_fact": {"marked": True},
         "when": "weight is even"},
        {"name": "False everywhere, registered", "ansible.builtin.command": "false",
         "when": ["weight > 0", "weight > 100"], "register": "never"},
        {"name": "True everywhere", "ansible.builtin.debug": {"msg": "{{ weight }}"}, "when": "weight > 0"},
        {"name": "Read back what was registered and set",
         "ansible.builtin.debug": {"msg": "{{ {'never': never, 'marked': marked | default('unset')} }}"}},
        {"name": "A condition that fails on some hosts", "ansible.builtin.debug": {"msg": "x"},
         "when": "weight > 2 or missing_variable", "ignore_errors": True},
        {"name": "A condition with templating delimiters", "ansible.builtin.debug": {"msg": "x"},
         "when": "{{ weight > 3 }}", "ignore_errors": True},
        {"name": "A loop's condition, for each item", "ansible.builtin.debug": {"msg": "{{ item }}"},
         "loop": [1, 2, 3], "when": "item < weight"},
        {"name": "A block with a condition",
         "when": "weight != 2",
         "block": [
             {"name": "In the block", "ansible.builtin.command": "true", "changed_when": True,
              "notify": "A handler with a condition"},
             {"name": "In the block, with its own condition", "ansible.builtin.fail": {"msg": "failed"},
              "when": "weight == 3"},
         ],
         "rescue": [{"name": "Rescued", "ansible.builtin.debug": {"msg": "rescued"}, "when": "weight == 3"}],
         "always": [{"name": "Always, with a condition", "ansible.builtin.debug": {"msg": "always"},
                     "when": "weight > 1"}]},
        {"name": "An include with a condition", "ansible.builtin.include_tasks": "included.yml",
         "when": "weight > 2"},
        {"name": "Once, false", "ansible.builtin.debug": {"msg": "once"}, "run_once": True,
         "when": "weight > 100"},
        {"name": "Delegated, false on some hosts", "ansible.builtin.debug": {"msg": "delegated"},
         "delegate_to": "alpha", "when": "weight > 2"},
        {"name": "No log, false", "ansible.builtin.debug": {"msg": "secret"}, "no_log": True,
         "when": "weight > 100"},
    ],
}


def run(tmp_path, label, **env_extra):
    out = tmp_path / f"record-{label}.json"
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FACT_CACHING="memory", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_CALLBACK_PLUGINS=str(tmp_path / "callbacks"), ANSIBLE_CALLBACKS_ENABLED="recorder",
               RECORDER_OUT=str(out), ANSIBLE_DEPRECATION_WARNINGS="1",
               **env_extra)
    done = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads(out.read_text())
    return record, [tuple(pair) for pair in record["forked"]], done.stdout


def results(record):
    """Every callback event with its host, task and result, in an order that does not depend on which host's
    worker answered first; and the run's statistics."""
    return sorted(record["events"], key=json.dumps), record["stats"]


def test_conditions_skipped_in_the_controller_give_the_linear_strategys_results(tmp_path):
    (tmp_path / "callbacks").mkdir()
    (tmp_path / "callbacks" / "recorder.py").write_text(RECORDER)
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {
        name: {"ansible_connection": "local", "weight": weight} for weight, name in enumerate(HOSTS, start=1)}}}))
    (tmp_path / "included.yml").write_text(yaml.safe_dump(INCLUDED, sort_keys=False))
    (tmp_path / "play.yml").write_text(yaml.safe_dump([PLAY], sort_keys=False))

    plugin, plugin_forks, plugin_output = run(tmp_path, "plugin")
    workers, worker_forks, _ = run(tmp_path, "workers", STACK_CONDITIONS_IN_WORKERS="1")
    linear, _, linear_output = run(tmp_path, "linear", ANSIBLE_STRATEGY="ansible.builtin.linear")

    assert results(plugin) == results(linear)
    assert results(workers) == results(linear)
    # What the user reads is the same too (the tasks' lines, warnings included), host by host.
    assert sorted(plugin_output.splitlines()) == sorted(linear_output.splitlines())

    seen = {(event, host, task): result for event, host, task, result in plugin["events"]}
    assert seen["skipped", "alpha", "False on some hosts"]["false_condition"] == "weight is even"
    assert seen["skipped", "delta", "False everywhere, registered"]["false_condition"] == "weight > 100"
    assert seen["ok", "bravo", "Read back what was registered and set"]["msg"] == {
        "marked": True, "never": {"changed": False, "false_condition": "weight > 100",
                                  "skip_reason": "Conditional result was False", "skipped": True}}
    assert "is undefined" in seen["failed (ignored)", "alpha", "A condition that fails on some hosts"]["msg"]
    assert seen["ok", "charlie", "A condition that fails on some hosts"]["msg"] == "x"
    assert seen["skipped", "delta", "No log, false"]["censored"]
    assert plugin["stats"]["charlie"]["rescued"] == 1

    # The host-tasks skipped by a plain condition (no loop, no delegation): a worker is forked for each through
    # Ansible's own way, none through the controller's.
    skipped_plainly = {
        "False on some hosts": ["alpha", "charlie"],
        "False everywhere, registered": HOSTS,
        "A condition with templating delimiters": ["alpha", "bravo", "charlie"],
        "In the block": ["bravo"],
        "In the block, with its own condition": ["alpha", "bravo", "delta"],
        "Always, with a condition": ["alpha", "bravo"],
        "An include with a condition": ["alpha", "bravo"],
        "An included task's own condition": ["charlie", "delta"],
        "Once, false": ["alpha"],
        "No log, false": HOSTS,
        "A handler with a condition": ["alpha"],
    }
    expected = sorted(worker_forks)
    for task, hosts in skipped_plainly.items():
        for host in hosts:
            expected.remove((host, task))
    assert sorted(plugin_forks) == expected
    # Where the controller cannot evaluate a condition at all, every task goes to a worker, with the same results.
    broken, broken_forks, _ = run(tmp_path, "broken", RECORDER_BREAK_CONTROLLER="1")
    assert results(broken) == results(linear)
    assert sorted(broken_forks) == sorted(worker_forks)
    # Where the condition holds, fails, loops or delegates, the task still runs in a worker.
    assert ("alpha", "A condition that fails on some hosts") in plugin_forks
    assert ("alpha", "A loop's condition, for each item") in plugin_forks
    assert ("alpha", "Delegated, false on some hosts") in plugin_forks
