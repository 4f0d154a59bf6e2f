# The linear strategy, run through Mitogen for Ansible when it is installed (requirements/control.txt has it), with
# the control node's work for each task and host made smaller: the plug-ins a play needs are loaded and the installed
# collections listed before its workers fork, a task whose condition is false on a host is skipped without forking a
# worker, a task whose action needs no server runs in the controller, and the code compiled from templates is kept
# for the run (below).
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

import hashlib
import marshal
import sys
import tempfile

from ansible import constants
from ansible.plugins.loader import strategy_loader
from ansible.utils.fqcn import add_internal_fqcns
from ansible.utils.display import Display

try:
    import ansible_mitogen.loaders  # noqa: F401  (imported first, as Mitogen's own strategy plug-ins do)
    import ansible_mitogen.strategy
except ImportError:
    ansible_mitogen = None

_Linear = strategy_loader.get("ansible.builtin.linear", class_only=True)


# Plug-ins loaded in the controller before its workers fork. A worker loads a plug-in when it first needs it and
# forgets it when it exits: the first filter or test of a task's templates made every worker import and wrap every
# file of Ansible's own filters and tests, and every task imported its action plug-in again. Loaded here once per
# play (Ansible's filters and tests, the action plug-ins of the play's tasks), every worker inherits them.
def load_plugins_before_fork(iterator) -> None:
    from ansible.plugins.loader import action_loader, filter_loader, test_loader

    for loader in (filter_loader, test_loader):
        for _plugin in loader.all():
            pass
    actions = {("ansible.legacy.normal", ())}
    actions.update((task.action, tuple(task.collections or ()))
                   for block in getattr(iterator, "_blocks", []) for task in block.get_tasks())
    for action, collections in actions:
        try:
            if action_loader.find_plugin_with_context(action, collection_list=list(collections)).resolved:
                action_loader.get(action, class_only=True, collection_list=list(collections))
        except Exception:  # only a head start: a worker that needs it loads it (and reports its errors) as before
            pass

# A task's condition, evaluated in the controller before a worker is forked for it. Ansible forks a worker for
# every task and host, and the worker's first step is the task's `when`: a task skipped on a host cost a fork, a
# connection to the host's multiplexer and the worker's exit (0.3 to 0.5 s for a task skipped on the eleven hosts
# of the lab, 150 host-tasks in a run with nothing to change). Here the controller runs the worker's own code
# (TaskExecutor) on a copy of the task, up to the condition: where it is false, the skipped result goes to the
# results queue as a worker would send it, and no worker is forked. Where it holds, or fails, or the task has a
# loop (its condition is evaluated for each item), delegates or is throttled, the task goes to a worker as before,
# which evaluates the condition again: the controller's reading changes nothing.
# tests/test_conditions_in_controller.py checks results, callbacks and output against Ansible's own linear strategy.
# STACK_CONDITIONS_IN_WORKERS=1 (in the environment) leaves every condition to the workers, as Ansible does.
class _ConditionHolds(BaseException):
    """Raised (past TaskExecutor's handlers of Exception) where a task's condition holds in the controller."""


def skipped_in_controller(strategy, host, task, task_vars, play_context) -> bool:
    """Send the result of a task skipped by its condition on this host without forking a worker; False (nothing
    sent) where the condition holds, fails, or the task is not one whose condition is evaluated before all else."""
    if (not task.when or task.loop or task.loop_with or task.delegate_to or task.throttle
            or task.action in constants._ACTION_META):
        return False
    try:
        skipped = _controller_skip(strategy, host, task, task_vars, play_context)
    except Exception:  # whatever went wrong here, the worker evaluates the condition (and reports) as before
        return False
    if skipped is None:
        return False
    probe, result = skipped
    _send_result(strategy, host, task, task_vars, play_context, probe, result)
    return True


def _controller_skip(strategy, host, task, task_vars, play_context):
    """(the task's copy, its skipped result) where the condition is false; None where it holds or fails."""
    evaluated = []

    def hold(held):
        if held:
            raise _ConditionHolds()
        evaluated.append(held)
        return held

    try:
        probe, result = _run_executor(strategy, host, task, task_vars, play_context, conditional_hook=hold)
    except _ConditionHolds:
        return None
    if not evaluated or not result.get("skipped") or result.get("failed"):
        return None
    return probe, result


# Tasks whose action needs no server at all, run in the controller. The plug-ins of these actions (an assertion, a
# fact set, a message, an argument check, a failure) do all their work in the controller's Python and never use the
# task's connection, yet Ansible forks a worker for each of them on each host, which connects to the host's
# multiplexer and exits (a run with nothing to change has 74 such tasks, the roles' argument checks among them;
# 68 neither loop nor delegate).
# Here the controller runs the worker's own code (TaskExecutor, on copies of the task and its variables) and sends
# the result to the results queue as a worker would. Only Ansible's own plug-ins of these actions are run so (not
# one a collection or a playbook's folder puts in their place), and not a task that loops (its items' results are
# sent as they come, before the task's own), delegates, is throttled, retries, polls or times out: those go to a
# worker as before. A result that failed where the action itself does not fail (anything but an assertion, a `fail`
# or an argument check) is not sent: a worker runs the task again and reports what it finds.
# tests/test_conditions_in_controller.py checks results, callbacks and output against Ansible's own linear strategy.
# STACK_LOCAL_ACTIONS_IN_WORKERS=1 (in the environment) runs them in workers, as Ansible does.
LOCAL_ACTIONS = frozenset(add_internal_fqcns(("assert", "debug", "fail", "set_fact", "validate_argument_spec")))
# The actions whose failure is their answer; any other failure is left to a worker to find again.
FAILING_ACTIONS = frozenset(add_internal_fqcns(("assert", "fail", "validate_argument_spec")))
_local_plugins: dict[tuple, bool] = {}


def _is_ansibles_local_action(task) -> bool:
    """Whether the task's action is one of LOCAL_ACTIONS and resolves to Ansible's own plug-in of it."""
    key = (task.action, tuple(task.collections or ()))
    if key not in _local_plugins:
        local = False
        if task.action in LOCAL_ACTIONS:
            import ansible.plugins.action
            from ansible.plugins.loader import action_loader

            context = action_loader.find_plugin_with_context(task.action, collection_list=list(key[1]))
            local = bool(context.resolved and context.plugin_resolved_path and os.path.dirname(
                os.path.abspath(context.plugin_resolved_path)) == os.path.dirname(
                    os.path.abspath(ansible.plugins.action.__file__)))
        _local_plugins[key] = local
    return _local_plugins[key]


def ran_in_controller(strategy, host, task, task_vars, play_context) -> bool:
    """Run a task whose action needs no server in the controller and send its result; False (nothing sent) where
    the task is not one of them or its run here cannot be trusted to be the worker's."""
    if (task.delegate_to or task.throttle or task.until or task.retries is not None or task.async_val
            or task.timeout or task.loop or task.loop_with or not _is_ansibles_local_action(task)):
        return False
    try:
        ran = _run_executor(strategy, host, task, task_vars, play_context)
    except Exception:  # whatever went wrong here, a worker runs the task (and reports) as before
        return False
    probe, result = ran
    if result.get("failed") and (task.action not in FAILING_ACTIONS
                                 or str(result.get("msg", "")).startswith("Unexpected failure")):
        return False
    _send_result(strategy, host, task, task_vars, play_context, probe, result)
    return True


def _run_executor(strategy, host, task, task_vars, play_context, conditional_hook=None):
    """Ansible's TaskExecutor, run in the controller on a copy of the task and of its variables: (the copy,
    the result). Raises ImportError with another ansible-core (its callers then leave the task to a worker)."""
    from ansible._internal import _task
    from ansible.executor.task_executor import TaskExecutor
    from ansible.plugins.loader import get_plugin_loader_namespace

    # The worker's own copy: TaskExecutor squashes it and sets its delegation.
    probe = task.copy(exclude_tasks=True)
    if conditional_hook is not None:
        resolve = probe._resolve_conditional
        probe._resolve_conditional = lambda conditional, variables, *, result_context=None: conditional_hook(
            resolve(conditional, variables, result_context=result_context))
    with _task.TaskContext(probe):
        # A copy of the variables too: the worker that may run the task next gets them as they were.
        result = TaskExecutor(host, probe, dict(task_vars), play_context, strategy._loader,
                              get_plugin_loader_namespace(), strategy._final_q, strategy._variable_manager).run()
    if conditional_hook is not None:
        del probe._resolve_conditional
    return probe, result


def _send_result(strategy, host, task, task_vars, play_context, probe, result) -> None:
    """What a worker does with its result, and what the strategy expects of a queued task."""
    from ansible.executor.task_result import _RawTaskResult

    strategy._queued_task_cache[(host.name, task._uuid)] = {
        "host": host, "task": task, "task_vars": task_vars, "play_context": play_context}
    strategy._tqm.send_callback("v2_runner_on_start", host, task)
    strategy._final_q.send_task_result(_RawTaskResult(host=host, task=probe, return_data=result,
                                                      task_fields=probe.dump_attrs()))
    strategy._pending_results += 1


class InController:
    """Strategy mixin: tasks skipped by their condition, and tasks whose action needs no server, are done by the
    controller, without a worker."""

    def _queue_task(self, host, task, task_vars, play_context):
        if os.environ.get("STACK_LOCAL_ACTIONS_IN_WORKERS") != "1" and ran_in_controller(
                self, host, task, task_vars, play_context):
            return None
        if os.environ.get("STACK_CONDITIONS_IN_WORKERS") != "1" and skipped_in_controller(
                self, host, task, task_vars, play_context):
            return None
        return super()._queue_task(host, task, task_vars, play_context)


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

    # Each task's child on the server is forked by django_stack_mitogen/__init__.py's spawn_isolated_child, which
    # keeps a child from waiting forever for a module its parent had asked for (the file says how). Mitogen sends
    # that package to the servers: it finds its source through sys.modules, under the name registered here.
    import importlib.util

    import ansible_mitogen.connection

    def _load_target_package(name: str):
        folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
        spec = importlib.util.spec_from_file_location(name, os.path.join(folder, "__init__.py"),
                                                      submodule_search_locations=[folder])
        package = importlib.util.module_from_spec(spec)
        sys.modules[name] = package
        spec.loader.exec_module(package)
        return package

    django_stack_mitogen = sys.modules.get("django_stack_mitogen") or _load_target_package("django_stack_mitogen")

    def _spawn_isolated_child(connection):
        return connection.get_chain(use_fork=True).call(django_stack_mitogen.spawn_isolated_child)

    ansible_mitogen.connection.Connection.spawn_isolated_child = _spawn_isolated_child

    # Mitogen serves the servers only the packages it allows (ansible, ansible_collections, ansible_mitogen): this
    # one too. Called in its connection multiplexer, forked from this process when the first play starts.
    import ansible_mitogen.process

    _setup_responder = ansible_mitogen.process._setup_responder

    def _setup_responder_with_ours(responder) -> None:
        _setup_responder(responder)
        responder.whitelist_prefix("django_stack_mitogen")

    ansible_mitogen.process._setup_responder = _setup_responder_with_ours

    class StrategyModule(InController, ansible_mitogen.strategy.StrategyMixin, _Linear):
        """The linear strategy over Mitogen's connections."""

        def run(self, iterator, play_context, result=0):
            _installed_collection_dirs()
            load_plugins_before_fork(iterator)
            return super().run(iterator, play_context, result)
else:
    Display().warning("Mitogen for Ansible is not installed (pip install mitogen): running the plain linear "
                      "strategy, which is slower.")

    class StrategyModule(InController, _Linear):
        """Ansible's own linear strategy."""

        def run(self, iterator, play_context, result=0):
            load_plugins_before_fork(iterator)
            return super().run(iterator, play_context, result)


# Compiled templates, shared by the run's workers. Ansible runs each task on each host in a worker process forked
# from the controller, and a worker compiles every template and condition it meets (Jinja's parser, code generator
# and Python's compiler) and forgets them when it exits: the same role defaults and task arguments were compiled
# again for every task and host: a tenth of the controller's CPU time in a run with nothing to change. Here the
# Python code Jinja makes of a template (or of a condition, an expression) is kept in a file of the run's local
# temporary folder (Ansible's own, removed when the run ends), named by a digest of the template and of every
# setting that changes the code made from it; a worker reads it back instead of compiling again. Only the step from
# source to code is kept: rendering, variables and the templates' origin tags are as before.
# tests/test_template_code_cache.py checks that templates and conditions give the same results through it.
try:
    import jinja2
    import jinja2.nodes
    from jinja2.environment import TemplateExpression
    from jinja2.parser import Parser

    from ansible import constants
    from ansible.release import __version__ as _ansible_version
    from ansible._internal._templating import _jinja_bits
except ImportError:  # another ansible-core: its templating runs unchanged
    _jinja_bits = None


class TemplateCodeCache:
    """The code Jinja compiles from template and expression sources, in files of one folder."""

    def __init__(self, folder: str):
        self.folder = folder
        os.makedirs(folder, mode=0o700, exist_ok=True)
        self.salt = repr((sys.version_info, sys.implementation.cache_tag, _ansible_version, jinja2.__version__))

    def path(self, environment, kind: str, source: str) -> str:
        """The file of this source's code: everything that changes the code made from it is in its name."""
        context = _jinja_bits._TemplateCompileContext.current(optional=True)
        settings = (self.salt, kind, type(environment).__module__, type(environment).__qualname__,
                    environment.optimized,
                    tuple(getattr(environment, name) for name in _jinja_bits._TEMPLATE_OVERRIDE_FIELD_NAMES),
                    None if context is None else context.escape_backslashes,
                    _jinja_bits._TemplateConfig.allow_embedded_templates)
        digest = hashlib.sha256(repr(settings).encode())
        digest.update(b"\0")
        digest.update(source.encode("utf-8", "surrogatepass"))
        return os.path.join(self.folder, digest.hexdigest())

    @staticmethod
    def load(path: str):
        try:
            with open(path, "rb") as code_file:
                return marshal.loads(code_file.read())
        except (OSError, EOFError, ValueError, TypeError):
            return None

    def store(self, path: str, code) -> None:
        """Written whole under another name, then renamed: a worker reading it never sees half a file."""
        try:
            descriptor, temporary = tempfile.mkstemp(dir=self.folder)
            with os.fdopen(descriptor, "wb") as code_file:
                code_file.write(marshal.dumps(code))
            os.replace(temporary, path)
        except OSError:
            pass


def install_template_code_cache(folder: str) -> bool:
    """Compile templates through a TemplateCodeCache in this folder (for this process and the workers it forks).
    False, and nothing changed, where the installed ansible-core does not have the parts this relies on."""
    environment_class = getattr(_jinja_bits, "AnsibleEnvironment", None)
    if environment_class is None or getattr(environment_class, "_code_cache", None) is not None or not all(
            hasattr(_jinja_bits, name) for name in (
                "_TemplateCompileContext", "_TEMPLATE_OVERRIDE_FIELD_NAMES", "_TemplateConfig")):
        return False
    cache = TemplateCodeCache(folder)
    compile_source = environment_class.compile

    def compile_template(self, source, name=None, filename=None, raw=False, defer_init=False):
        # Templates Jinja loads by name (include, import, the template module's files) keep Jinja's own path.
        if (raw or defer_init or name is not None or filename is not None or not isinstance(source, str)
                or getattr(self, "_debuggable_template_source", False)):
            return compile_source(self, source, name, filename, raw, defer_init)
        try:
            path = cache.path(self, "template", source)
        except Exception:  # a setting the key cannot read: compiled as without the cache
            return compile_source(self, source)
        code = cache.load(path)
        if code is None:
            code = compile_source(self, source)
            cache.store(path, code)
        return code

    def compile_expression(self, source, undefined_to_none=True):
        # jinja2.Environment.compile_expression, with the code made from the parsed expression kept.
        if getattr(self, "_debuggable_template_source", False) or not isinstance(source, str):
            return compile_expression.__wrapped__(self, source, undefined_to_none)
        try:
            path = cache.path(self, "expression", source)
        except Exception:  # a setting the key cannot read: compiled as without the cache
            return compile_expression.__wrapped__(self, source, undefined_to_none)
        code = cache.load(path)
        if code is None:
            parser = Parser(self, source, state="variable")
            try:
                expression = parser.parse_expression()
                if not parser.stream.eos:
                    raise jinja2.TemplateSyntaxError("chunk after expression", parser.stream.current.lineno,
                                                     None, None)
                expression.set_environment(self)
            except jinja2.TemplateSyntaxError:
                self.handle_exception(source=source)
            body = [jinja2.nodes.Assign(jinja2.nodes.Name("result", "store"), expression, lineno=1)]
            code = compile_source(self, jinja2.nodes.Template(body, lineno=1))
            cache.store(path, code)
        template = self.template_class.from_code(self, code, self.make_globals(None), None)
        return TemplateExpression(template, undefined_to_none)

    compile_expression.__wrapped__ = environment_class.compile_expression
    environment_class.compile = compile_template
    environment_class.compile_expression = compile_expression
    environment_class._code_cache = cache
    return True


if _jinja_bits is not None:
    install_template_code_cache(os.path.join(constants.DEFAULT_LOCAL_TMP, "template-code"))
