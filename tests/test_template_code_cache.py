"""The strategy plug-in (playbooks/strategy_plugins/mitogen_linear.py) keeps the code Jinja compiles from each
template and condition in the run's temporary folder, so the next worker that meets the same template reads the
code instead of compiling it again.

A cache like this is only right if the code read back is the code that would have been compiled: each template and
condition below is rendered three times, each time in a process of its own as Ansible's workers are: without the
plug-in, then with it in a first worker (which compiles and stores) and in a second one forked after it (which must
read every template back, compiling none). All three must give the same results, errors included. Sources that
compile differently under different settings (backslash escaping, `#jinja2:` overrides) must not share a file.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = r"""
import json, os, sys
import jinja2
from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

with_cache = sys.argv[1] == "cache"
if with_cache:
    from ansible.plugins.loader import init_plugin_loader, strategy_loader
    init_plugin_loader()
    strategy_loader.add_directory(sys.argv[2])
    plugin = strategy_loader.get("mitogen_linear", class_only=True)
    from ansible._internal._templating._jinja_bits import AnsibleEnvironment
    folder = AnsibleEnvironment._code_cache.folder
    if sys.argv[3:] == ["broken-key"]:
        # Naming a file fails (say, a setting the key reads is missing from another ansible-core's environment).
        def cannot_name(*args):
            raise AttributeError("no_such_setting")
        AnsibleEnvironment._code_cache.path = cannot_name

CASES = [
    ("template", "{{ x + 1 }}", {}),
    ("template", "{{ 'on' if flag else 'off' }}-{{ names | join(',') }}", {}),
    ("template", "{% for n in names %}[{{ n | upper }}]{% endfor %}", {}),
    ("template", "{{ names | map('length') | sum }} {{ mapping.a }}", {}),
    # Backslashes in a string constant: escaped (YAML already unescaped them) or not, two different codes.
    ("template", "{{ 'a\\nb' }}", {"escape_backslashes": True}),
    ("template", "{{ 'a\\nb' }}", {"escape_backslashes": False}),
    # A template's own Jinja settings: the same body compiles differently under its header.
    ("template", "#jinja2:variable_start_string:'[[',variable_end_string:']]'\n[[ x ]] {{ x }}", {}),
    ("template", "[[ x ]] {{ x }}", {}),
    ("template", "{{ x + }}", {}),
    ("template", "{{ missing_variable }}", {}),
    ("condition", "x > 0 and flag", {}),
    ("condition", "x > 5", {}),
    ("condition", "'b' in names", {}),
    ("condition", "x >", {}),
    ("expression", "names | length + x", {}),
]
VARIABLES = {"x": 1, "flag": True, "names": ["a", "b", "cd"], "mapping": {"a": "A"}}

def render_all():
    templar = Templar(loader=DataLoader(), variables=VARIABLES)
    results = []
    for kind, source, options in CASES:
        try:
            if kind == "template":
                value = templar.template(trust_as_template(source), **options)
            elif kind == "condition":
                value = templar.evaluate_conditional(trust_as_template(source))
            else:
                value = templar.evaluate_expression(trust_as_template(source))
            results.append(["ok", repr(value)])
        except AnsibleError as error:
            results.append(["error", type(error).__name__])
    return results

generated = []
real_generate = jinja2.Environment._generate
def counting_generate(self, *args, **kwargs):
    generated.append(1)
    return real_generate(self, *args, **kwargs)
jinja2.Environment._generate = counting_generate

workers = []
for _ in range(2 if with_cache else 1):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        results = render_all()
        os.write(write, json.dumps({"results": results, "compiled": len(generated)}).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        workers.append(json.loads(pipe.read()))
    os.waitpid(pid, 0)
print(json.dumps({"workers": workers, "files": len(os.listdir(folder)) if with_cache else 0}))
"""


def run(*args):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    out = subprocess.run([sys.executable, "-c", SCRIPT, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.splitlines()[-1])


def test_templates_and_conditions_give_the_same_results_when_their_code_is_read_back():
    [plain] = run("plain")["workers"]
    cached = run("cache", str(ROOT / "playbooks/strategy_plugins"))
    first, second = cached["workers"]

    # The cases mean what they say: escaping and a template's header change the result, errors stay errors.
    results = plain["results"]
    assert results[4] != results[5], results
    assert results[6] == ["ok", repr("1 {{ x }}")], results
    assert results[6] != results[7], results
    assert results[8][0] == "error" and results[9][0] == "error" and results[13][0] == "error", results

    assert first["results"] == plain["results"]
    assert second["results"] == plain["results"]
    # The first worker compiled and stored; the second, forked after it, compiled only what cannot be kept
    # (the sources that fail to compile).
    assert first["compiled"] > 0
    assert second["compiled"] == 0, second
    # One file per source and settings that compiled (the two escapings and the header apart).
    assert cached["files"] == 13, cached


def test_a_template_whose_file_cannot_be_named_is_compiled_as_without_the_cache():
    """Where the key cannot be made (a setting it reads is missing from another ansible-core), the template is
    compiled as without the plug-in, instead of failing the task."""
    [plain] = run("plain")["workers"]
    broken = run("cache", str(ROOT / "playbooks/strategy_plugins"), "broken-key")
    for worker in broken["workers"]:
        assert worker["results"] == plain["results"]
    assert broken["files"] == 0, broken
