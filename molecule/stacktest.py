"""Helpers shared by the testinfra modules of every scenario.

Tests reach a node through the scenario's inventory (as molecule wrote it) and send traffic from one
container to another, so firewall rules are checked the way the tiers use them.
"""

import json
import os
import re
import signal
import subprocess
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import testinfra
import yaml
from testinfra.utils.ansible_runner import AnsibleRunner

INVENTORY = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])


def inventory():
    return AnsibleRunner(INVENTORY)


def hosts_of(group):
    """Inventory names of a group, in inventory order."""
    return inventory().get_hosts(group)


def node(name):
    """A testinfra host for an inventory name."""
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


def _python(host, script, *args):
    """Run a Python script on a node (every node has python3) and return the JSON it prints."""
    placeholders = " ".join(["%s"] * (len(args) + 1))
    cmd = host.run(f"python3 -c {placeholders}", textwrap.dedent(script), *args)
    assert cmd.rc == 0, cmd.stderr
    return json.loads(cmd.stdout)


_TCP = """
import json, socket, sys
s = socket.socket(); s.settimeout(float(sys.argv[3]))
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print(json.dumps({"open": True}))
except OSError as e:
    print(json.dumps({"open": False, "error": type(e).__name__}))
"""


def tcp_open(src, dst, port, timeout=2.0):
    """Whether a TCP connection from inventory host src to dst:port is accepted."""
    return _python(node(src), _TCP, dst, str(port), str(timeout))["open"]


def tcp_open_each(attempts, timeout=2.0):
    """{(src, dst, port): whether it was accepted} for many connection attempts, made a few at a time side by side
    (each is a `docker exec`): a firewall drops what it refuses, so each refused attempt waits out its timeout, and
    one after the other they were most of a firewall test's time."""
    attempts = list(dict.fromkeys(attempts))
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = pool.map(lambda attempt: tcp_open(*attempt, timeout=timeout), attempts)
        return dict(zip(attempts, answers))


_HTTP = """
import json, sys, urllib.request, urllib.error
method, url, body = sys.argv[1], sys.argv[2], sys.argv[3]
req = urllib.request.Request(url, data=body.encode() if body else None, method=method)
try:
    with urllib.request.urlopen(req, timeout=5) as r:
        out = {"status": r.status, "headers": dict(r.headers), "body": r.read().decode(errors="replace")}
except urllib.error.HTTPError as e:
    out = {"status": e.code, "headers": dict(e.headers), "body": e.read().decode(errors="replace")}
except OSError as e:
    out = {"status": None, "error": type(e).__name__, "headers": {}, "body": ""}
print(json.dumps(out))
"""


def http(src, method, url, body=""):
    """An HTTP request made from inventory host src: {status, headers, body}."""
    return _python(node(src), _HTTP, method, url, body)


_MEMCACHED = """
import json, socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
s.sendall(sys.argv[3].encode().decode("unicode_escape").encode())
data = b""
while not data.endswith((b"END\\r\\n", b"STORED\\r\\n", b"ERROR\\r\\n")):
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(json.dumps({"reply": data.decode()}))
"""


# A small browser: a cookie jar, TLS without verification (the lab's certificate is self-signed), and the
# CSRF token of the page it last fetched. Runs a list of steps and prints what each returned.
_BROWSER = r"""
import http.cookiejar, json, re, ssl, sys, urllib.parse, urllib.request, urllib.error
steps = json.loads(sys.argv[1])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
jar = http.cookiejar.CookieJar()
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None
opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx), urllib.request.HTTPCookieProcessor(jar), NoRedirect)
token, out = None, []
for method, path, form, headers in steps:
    data = None
    if form is not None:
        form = dict(form)
        if token:
            form.setdefault("csrfmiddlewaretoken", token)
        data = urllib.parse.urlencode(form).encode()
    req = urllib.request.Request(sys.argv[2] + path, data=data, method=method, headers={"Referer": sys.argv[2] + "/", **headers})
    try:
        with opener.open(req, timeout=10) as r:
            status, hdrs, body = r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, body = e.code, dict(e.headers), e.read()
    hdrs = {k.lower(): v for k, v in hdrs.items()}
    size = len(body)
    if hdrs.get("content-encoding") == "gzip":
        import gzip
        body = gzip.decompress(body)
    text = body.decode(errors="replace")
    found = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', text)
    if found:
        token = found[-1]
    out.append({"status": status, "headers": hdrs, "body": text, "size": size})
print(json.dumps(out))
"""


def browse(*steps, src=None, base="https://127.0.0.1"):
    """Run steps (method, path, form or None, headers) in one browser session, from src (default: the first load
    balancer) against base; each step's {status, headers, body, size}: a gzip body comes decompressed, its size is
    the bytes that came over the wire."""
    src = src or hosts_of("loadbalancers")[0]
    return _python(node(src), _BROWSER, json.dumps([[*step, {}][:4] for step in steps]), base)


def memcached(src, dst, command, port=11211):
    """Send a memcached text-protocol command from src to dst and return the reply."""
    return _python(node(src), _MEMCACHED, dst, str(port), command)["reply"]


def run_playbook(playbook, *extra_inventories, extra_vars=None, limit=None, inventory=None, timeout=900):
    """Run a playbook of this project against the scenario's inventory (plus extra inventory files), or against
    another inventory given whole.

    Returns (return code, output); 124 and what it printed when it ran longer than timeout seconds (the run and
    every process it started are killed then). Used by tests that change the topology or break a server on purpose.
    """
    root = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    cmd = ["ansible-playbook", "-i", str(inventory or INVENTORY)]
    for extra in extra_inventories:
        cmd += ["-i", str(extra)]
    for key, value in (extra_vars or {}).items():
        cmd += ["-e", f"{key}={value}"]
    if limit:
        cmd += ["--limit", ",".join(limit)]
    cmd.append(os.path.join(root, playbook))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    with subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as run:
        try:
            out, err = run.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            out, err = run.communicate()
            return 124, out + err
    return run.returncode, out + err


def _without_hosts(tree, hosts):
    """An inventory tree (YAML) with these hosts taken out of every group."""
    if not isinstance(tree, dict):
        return tree
    return {key: ({h: v for h, v in (value or {}).items() if h not in hosts} if key == "hosts"
                  else _without_hosts(value, hosts))
            for key, value in tree.items()}


def edited_inventory(name, hosts_tree, group_vars, leave_out=()):
    """The scenario's inventory as an operator edits it (after a promotion, a lost host): the same hosts and
    connection settings (molecule's instance file) but those left out (gone from the inventory, as a lost host
    is), the given groups (hosts.yml's tree) and group_vars (a folder). Returns its folder, for
    run_playbook(inventory=...)."""
    target = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / name
    target.mkdir(exist_ok=True)
    instances = yaml.safe_load(Path(os.environ["MOLECULE_INVENTORY_FILE"]).read_text())
    (target / "ansible_inventory.yml").write_text(yaml.safe_dump(_without_hosts(instances, set(leave_out))))
    (target / "hosts.yml").write_text(yaml.safe_dump(hosts_tree))
    link, shared = target / "group_vars", Path(group_vars).resolve()
    # The ephemeral directory can outlive a checkout: a link left by a run from another one may dangle.
    if link.is_symlink() and link.resolve() != shared:
        link.unlink()
    if not link.is_symlink():
        link.symlink_to(shared)
    return target


def recap(out):
    """{host: changed count} from a playbook's PLAY RECAP."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", out, re.M)}


def changed_tasks(out):
    """{host: [task, ...]} of the tasks (and handlers) that reported a change, from a playbook's default output."""
    changed, task = {}, None
    for line in out.splitlines():
        header = re.match(r"^(?:TASK|RUNNING HANDLER) \[(.+?)\]", line)
        if header:
            task = header.group(1)
            continue
        hit = re.match(r"^changed: \[([^\]]+)\]", line)
        if hit and task:
            changed.setdefault(hit.group(1).split(" -> ")[0], []).append(task)
    return changed


def container(name):
    """The container name of an inventory host in the running scenario."""
    return f"molecule-{os.environ['MOLECULE_SCENARIO_NAME']}-{name}"


# README's ansible.cfg for the collection's users, as a user writes it: where collections go, pipelining, handlers
# run on a failed host, the fact cache (a limited run still knows every host's addresses), and Mitogen through the
# collection's plug-in (which ansible-playbook finds beside the collection's playbooks).
USER_ANSIBLE_CFG = """[defaults]
collections_path = collections
pipelining = true
forks = 20
force_handlers = true
interpreter_python = auto_silent
gathering = smart
fact_caching = jsonfile
fact_caching_connection = .cache/facts
fact_caching_timeout = 86400
strategy = mitogen_linear
"""


def installed_collection(directory, keep_env=()):
    """The collection, from the tarball `make collection` built, installed into ``directory`` (a user's, with
    README's ansible.cfg): the environment to run its playbooks with. Only that directory's collections (and those
    the ansible package ships), never a copy installed elsewhere; none of the test run's ANSIBLE_* or MOLECULE_*
    variables but ``keep_env`` (those an inventory reads)."""
    root = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
    version = yaml.safe_load((root / "galaxy.yml").read_text())["version"]
    tarball = root / "dist" / f"django_stack-stack-{version}.tar.gz"
    assert tarball.exists(), f"{tarball}: run `make collection` first (make test-molecule does)"
    (directory / "ansible.cfg").write_text(USER_ANSIBLE_CFG)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_")) or k in keep_env}
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_CONFIG=str(directory / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(directory / "collections"))
    done = subprocess.run(["ansible-galaxy", "collection", "install", "--force", "--no-deps", "-p", "collections",
                           str(tarball)], cwd=directory, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return env


def collection_site(directory, env, inventory, log_name, *args):
    """The installed collection's site playbook run from the user's directory: its output, or a failure that names
    the kept log (the assertion shows the output's end only)."""
    run = subprocess.run(["ansible-playbook", "-i", str(inventory / "hosts.yml"), "django_stack.stack.site", *args],
                         cwd=directory, env=env, capture_output=True, text=True, timeout=1200)
    out = run.stdout + run.stderr
    log = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / log_name
    log.write_text(out)
    assert run.returncode == 0, f"{log}\n" + out[-5000:]
    return out


# A bounded load through the load balancer, run on it as a transient unit: two readers GET catalog pages and a
# logged-in customer adds to the cart (GET the page, POST the form with its CSRF token). Every answer is recorded
# as [seconds since the start, kind, status]; it stops when told (a file) or after `limit` seconds.
_LOAD = r"""
import http.cookiejar, json, os, re, ssl, sys, threading, time, urllib.parse, urllib.request, urllib.error
base, name, limit, user, password = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
start = time.monotonic(); end = start + limit
results = []
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None
def opener():
    return urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx),
                                       urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect)
def call(op, kind, path, form=None):
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    req = urllib.request.Request(base + path, data=data, headers={"Referer": base + "/"})
    try:
        with op.open(req, timeout=10) as r:
            status, body = r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read().decode(errors="replace")
    except OSError as e:
        status, body = type(e).__name__, ""
    results.append([round(time.monotonic() - start, 3), kind, status])
    found = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', body)
    return found[-1] if found else None
def stopped():
    return time.monotonic() >= end or os.path.exists(f"/tmp/{name}.stop")
def reader(offset):
    op, i = opener(), offset
    while not stopped():
        call(op, "get", "/?page=%d" % (i % 5 + 1) if i % 2 else "/c/cat-%03d/" % (i % 20 + 1))
        i += 1
        time.sleep(0.1)
def customer():
    op = opener()
    token = call(op, "get", "/login/")
    call(op, "login", "/login/", {"username": user, "password": password, "csrfmiddlewaretoken": token or ""})
    while not stopped():
        token = call(op, "get", "/c/cat-001/") or token
        call(op, "post", "/cart/add/", {"product": "1", "next": "/c/cat-001/", "csrfmiddlewaretoken": token or ""})
        time.sleep(0.2)
threads = [threading.Thread(target=reader, args=(n,)) for n in (0, 1)] + [threading.Thread(target=customer)]
for t in threads:
    t.start()
for t in threads:
    t.join()
json.dump(results, open(f"/tmp/{name}.json", "w"))
"""

# What each kind of request answers when all is well: pages 200, the login and the cart's POST a redirect.
LOAD_OK = {"get": 200, "login": 302, "post": 302}


def under_load(action, name, base="https://127.0.0.1", limit=600, user="load", password="load-long-password"):
    """Run action() while the load above runs from the first load balancer against base (the user must exist);
    returns the load's answers, [seconds, kind, status] each. The caller checks them (load_failures)."""
    lb = node(hosts_of("loadbalancers")[0])
    lb.run(f"rm -f /tmp/{name}.stop /tmp/{name}.json")
    started = lb.run(f"systemd-run --unit {name} --collect python3 -c %s %s %s %s %s %s",
                     _LOAD, base, name, str(limit), user, password)
    assert started.rc == 0, started.stderr
    try:
        action()
    finally:
        lb.run(f"touch /tmp/{name}.stop")
        lb.run(f"timeout 30 sh -c 'while systemctl is-active -q {name}; do sleep 0.2; done'")
    return json.loads(lb.file(f"/tmp/{name}.json").content_string)


def load_failures(answers):
    """The answers of under_load that are not what their kind answers when all is well."""
    return [answer for answer in answers if LOAD_OK.get(answer[1]) != answer[2]]
