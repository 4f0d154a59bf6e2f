"""The strategy plug-in (playbooks/strategy_plugins/mitogen_linear.py) does two kinds of task in the controller,
without forking a worker: a task whose condition is false on a host (skipped there), and a task whose action needs
no server (assert, debug, fail, set_fact, validate_argument_spec: run there). The results, callbacks, registered
variables, warnings and errors must be those of Ansible's own linear strategy.

One playbook with conditions of every kind (false on some hosts, true, failing, a loop's, a block's, an
include's, a handler's, run_once, registered and read back, a deprecated form that warns) and local actions of
every kind (holding and failing assertions, facts set, cached, hidden or set once, an argument check that passes
and one that fails, a role's own argument check, a fact from an undefined variable, a retried one) runs against four
inventory hosts that are this machine (local connection, nothing else is contacted), five ways: through the
plug-in; with STACK_LOCAL_ACTIONS_IN_WORKERS=1 (conditions only); with that and STACK_CONDITIONS_IN_WORKERS=1
(every task in a worker, as before); through ansible.builtin.linear; and through the plug-in with Ansible's task
executor failing in the controller (every task must then go to a worker). A callback of this test records every
callback event with its result, and counts the workers Ansible forks: the events must be the same every way, and
the plug-in must fork exactly one worker fewer for each host-task skipped by a plain condition or run in the
controller, and no fewer.
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

# How often the strategy peeked at a host's next task (the free strategy does it for every host on each pass).
from ansible.executor.play_iterator import PlayIterator
PEEKS = [0]
_next_task = PlayIterator.get_next_task_for_host


def next_task(self, host, peek=False):
    PEEKS[0] += bool(peek)
    return _next_task(self, host, peek)


PlayIterator.get_next_task_for_host = next_task

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
            json.dump({"forked": FORKED, "events": self.events, "stats": summary, "peeks": PEEKS[0]}, out)
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
        # Local actions: run in the controller (unless they loop, delegate or retry).
        {"name": "An assertion that holds", "ansible.builtin.assert": {"that": ["weight > 0"], "quiet": True}},
        {"name": "An assertion that fails on some hosts",
         "ansible.builtin.assert": {"that": ["weight < 3"], "fail_msg": "too heavy: {{ weight }}"},
         "ignore_errors": True, "register": "asserted"},
        {"name": "A cached fact, registered", "ansible.builtin.set_fact": {
            "doubled": "{{ weight * 2 }}", "cacheable": True}, "register": "set"},
        {"name": "A hidden fact", "ansible.builtin.set_fact": {"hidden": "{{ weight }}-secret"}, "no_log": True},
        {"name": "A fact set once", "ansible.builtin.set_fact": {"first": "{{ inventory_hostname }}"},
         "run_once": True},
        {"name": "A fact from an undefined variable", "ansible.builtin.set_fact": {"broken": "{{ nothing_here }}"},
         "ignore_errors": True},
        {"name": "A fact retried until it holds", "ansible.builtin.set_fact": {"retried": True},
         "until": "retried", "retries": 1, "delay": 0},
        {"name": "Facts set in a loop", "ansible.builtin.set_fact": {"looped": "{{ item }}"}, "loop": [1, 2]},
        {"name": "Arguments that pass their check", "ansible.builtin.validate_argument_spec": {
            "argument_spec": {"weight": {"type": "int", "required": True}},
            "provided_arguments": {"weight": "{{ weight }}"}}},
        {"name": "Arguments that fail their check on some hosts", "ansible.builtin.validate_argument_spec": {
            "argument_spec": {"weight": {"type": "int", "choices": [1, 2]}},
            "provided_arguments": {"weight": "{{ weight }}"}}, "ignore_errors": True},
        {"name": "A role with an argument spec", "ansible.builtin.include_role": {"name": "checked"},
         "vars": {"checked_size": "{{ weight }}"}},
        {"name": "A message of a variable", "ansible.builtin.debug": {"var": "doubled"}},
        {"name": "Read back the local actions' results", "ansible.builtin.debug": {
            "msg": "{{ [asserted.failed | default(false), set.ansible_facts, hidden, first, looped, retried,"
                   " checked_seen] }}"}},
        {"name": "A failure, rescued on some hosts", "block": [
            {"name": "Fail on heavy hosts", "ansible.builtin.fail": {"msg": "heavy {{ weight }}"},
             "when": "weight > 3"}],
         "rescue": [{"name": "Rescued the failure", "ansible.builtin.set_fact": {"failure_rescued": True}}]},
    ],
}

ROLE_SPEC = {"argument_specs": {"main": {"short_description": "A role whose arguments are checked", "options": {
    "checked_size": {"type": "int", "required": True, "description": "A size"}}}}}
ROLE_TASKS = [{"name": "The checked role's task", "ansible.builtin.set_fact": {"checked_seen": "{{ checked_size }}"}}]


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


def lines(output):
    """The printed lines, sorted; an include's hosts are listed in the order their results came, sorted too."""
    def host_order(line):
        head, sep, hosts = line.partition(" for ")
        return head + sep + ", ".join(sorted(hosts.split(", "))) if line.startswith("included: ") else line
    return sorted(host_order(line) for line in output.splitlines())


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
    for folder, content in (("meta/argument_specs.yml", ROLE_SPEC), ("tasks/main.yml", ROLE_TASKS)):
        (tmp_path / "roles" / "checked" / folder).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "roles" / "checked" / folder).write_text(yaml.safe_dump(content, sort_keys=False))

    plugin, plugin_forks, plugin_output = run(tmp_path, "plugin")
    conditions, condition_forks, _ = run(tmp_path, "conditions", STACK_LOCAL_ACTIONS_IN_WORKERS="1")
    workers, worker_forks, _ = run(tmp_path, "workers", STACK_LOCAL_ACTIONS_IN_WORKERS="1",
                                   STACK_CONDITIONS_IN_WORKERS="1")
    linear, _, linear_output = run(tmp_path, "linear", ANSIBLE_STRATEGY="ansible.builtin.linear")

    assert results(plugin) == results(linear)
    assert results(conditions) == results(linear)
    assert results(workers) == results(linear)
    # What the user reads is the same too (the tasks' lines, warnings included), host by host.
    assert lines(plugin_output) == lines(linear_output)

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
    assert seen["failed (ignored)", "charlie", "An assertion that fails on some hosts"]["msg"] == "too heavy: 3"
    assert seen["ok", "delta", "Read back the local actions' results"]["msg"] == [
        True, {"doubled": 8}, "4-secret", "alpha", 2, True, 4]
    assert seen["ok", "bravo", "A hidden fact"]["censored"]
    assert "is undefined" in seen["failed (ignored)", "alpha", "A fact from an undefined variable"]["msg"]
    assert "value of weight must be one of" in seen[
        "failed (ignored)", "delta", "Arguments that fail their check on some hosts"]["msg"]
    assert seen["ok", "alpha", "A message of a variable"]["doubled"] == 2
    assert plugin["stats"]["delta"]["rescued"] == 1

    # The host-tasks skipped by a plain condition (no loop, no delegation): a worker is forked for each through
    # Ansible's own way, none through the controller's.
    skipped_plainly = {
        "False everywhere, registered": HOSTS,
        "In the block": ["bravo"],
        "An include with a condition": ["alpha", "bravo"],
    }
    expected = sorted(worker_forks)
    for task, hosts in skipped_plainly.items():
        for host in hosts:
            expected.remove((host, task))
    # Tasks of local actions, skipped or not: with conditions only, those skipped by a plain condition fork nothing.
    local_skipped = {
        "False on some hosts": ["alpha", "charlie"],
        "A condition with templating delimiters": ["alpha", "bravo", "charlie"],
        "In the block, with its own condition": ["alpha", "bravo", "delta"],
        "Always, with a condition": ["alpha", "bravo"],
        "An included task's own condition": ["charlie", "delta"],
        "Once, false": ["alpha"],
        "No log, false": HOSTS,
        "A handler with a condition": ["alpha"],
        "Fail on heavy hosts": ["alpha", "bravo", "charlie"],
    }
    conditions_expected = list(expected)
    for task, hosts in local_skipped.items():
        for host in hosts:
            conditions_expected.remove((host, task))
    assert sorted(condition_forks) == sorted(conditions_expected)
    # With local actions in the controller too, none of their tasks forks a worker, except those that loop,
    # delegate or retry, and those that failed where the action does not fail by itself (a set_fact's undefined
    # variable, a debug's failing condition): a worker tried them again.
    in_workers = {"A loop's condition, for each item", "Delegated, false on some hosts", "Facts set in a loop",
                  "A fact retried until it holds", "A fact from an undefined variable"}
    local_tasks = {name for _, name in worker_forks if name not in in_workers} - {
        "False everywhere, registered", "In the block", "An include with a condition", "A role with an argument spec"}
    assert local_tasks >= {"An assertion that holds", "Arguments that pass their check",
                           "checked : The checked role's task",
                           "checked : Validating arguments against arg spec 'main' - A role whose arguments are checked"}
    tried_again = [("alpha", "A condition that fails on some hosts"), ("bravo", "A condition that fails on some hosts")]
    assert sorted(plugin_forks) == sorted([fork for fork in expected if fork[1] not in local_tasks] + tried_again)
    # Where the controller cannot run the task executor at all, every task goes to a worker, with the same results.
    broken, broken_forks, _ = run(tmp_path, "broken", RECORDER_BREAK_CONTROLLER="1")
    assert results(broken) == results(linear)
    assert sorted(broken_forks) == sorted(worker_forks)
    # Where the condition holds, fails, loops or delegates, the task still runs in a worker.
    assert ("alpha", "A condition that fails on some hosts") in condition_forks
    for task in in_workers:
        assert ("alpha", task) in plugin_forks, task


def test_the_free_strategy_plugin_gives_ansibles_free_results_with_fewer_workers(tmp_path):
    """site.yml's side-by-side tiers (playbooks/tiers.yml) run through playbooks/strategy_plugins/mitogen_free.py:
    the same play, each host at its own pace, must give the events and statistics of Ansible's own free strategy,
    with the controller doing the skipped and local tasks (fewer workers); and a run whose strategy is not
    mitogen_linear gets Ansible's own free strategy from it, forking a worker for every task as that one does.
    The free strategy peeks at every host's next task each millisecond while the hosts wait for their workers; the
    plug-in waits for a result instead (a count of peeks, not a time, is compared)."""
    (tmp_path / "callbacks").mkdir()
    (tmp_path / "callbacks" / "recorder.py").write_text(RECORDER)
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {
        name: {"ansible_connection": "local", "weight": weight} for weight, name in enumerate(HOSTS, start=1)}}}))
    (tmp_path / "included.yml").write_text(yaml.safe_dump(INCLUDED, sort_keys=False))
    for folder, content in (("meta/argument_specs.yml", ROLE_SPEC), ("tasks/main.yml", ROLE_TASKS)):
        (tmp_path / "roles" / "checked" / folder).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "roles" / "checked" / folder).write_text(yaml.safe_dump(content, sort_keys=False))

    def run_with(label, strategy, **env_extra):
        (tmp_path / "play.yml").write_text(yaml.safe_dump([dict(PLAY, strategy=strategy)], sort_keys=False))
        return run(tmp_path, label, **env_extra)

    def free_results(record):
        """results(), but for the fact set once: under the free strategy a run_once task runs on every host (Ansible
        warns), and the fact of whichever host came last is everyone's."""
        for event in record["events"]:
            if event[2] == "Read back the local actions' results" and event[0] == "ok":
                event[3]["msg"][3] = "(set by any host)"
        return results(record)

    plugin, plugin_forks, _ = run_with("free-plugin", "mitogen_free")
    free, free_forks, _ = run_with("free", "ansible.builtin.free")
    assert free_results(plugin) == free_results(free)
    assert plugin["stats"]["charlie"]["rescued"] == 1
    # While every host waits for its worker, the plug-in waits for a result instead of peeking at every host's next
    # task again each millisecond (about 400 peeks against 2,000 for this play).
    assert plugin["peeks"] * 2 < free["peeks"], (plugin["peeks"], free["peeks"])
    # Every host-task that forked a worker through the plug-in forked one through Ansible's free strategy too, and
    # the local and skipped ones forked none: the assertions, facts and argument checks that neither loop, delegate
    # nor retry, and the tasks skipped by a plain condition.
    assert set(plugin_forks) < set(free_forks)
    for task in ("An assertion that holds", "Arguments that pass their check", "False everywhere, registered"):
        assert not [fork for fork in plugin_forks if fork[1] == task], task
        assert len([fork for fork in free_forks if fork[1] == task]) == len(HOSTS), task
    for task in ("A loop's condition, for each item", "Delegated, false on some hosts", "Facts set in a loop"):
        assert ("alpha", task) in plugin_forks, task

    # Under another strategy for the run (Ansible's own linear), the plug-in is Ansible's free strategy unchanged.
    plain, plain_forks, _ = run_with("free-plugin-plain", "mitogen_free", ANSIBLE_STRATEGY="ansible.builtin.linear")
    assert free_results(plain) == free_results(free)
    assert sorted(plain_forks) == sorted(free_forks)
