"""The configuration file: every bad key stops start-up with its name; a production config passes check --deploy.

The start-up tests run the guestbook's manage.py: a project that adopted the package in a few lines of settings.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from django_stack import config

GUESTBOOK = Path(__file__).resolve().parent / "guestbook"

GOOD = {
    "secret_key": "s" * 20 + "-production-like-secret-" + "x" * 20,
    "allowed_hosts": ["shop.example.com"],
    "database": {"name": "shop", "user": "shop", "password": "pw", "primary": {"host": "db1"},
                 "replicas": [{"host": "db2"}, {"host": "db3", "port": 3307, "user": "other", "password": "pw3"}]},
    "cache": {"servers": ["cache1:11211", "cache2:11211"]},
    "media": {"url": "https://shop.example.com/media/", "servers": ["http://media1/media/"]},
    "static_root": "/srv/shop/static",
    "project": {},
}


def with_change(path: str, value):
    data = json.loads(json.dumps(GOOD))
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return data


def test_good_config_parses_with_defaults():
    parsed = config.parse(GOOD)
    assert parsed.https is True and parsed.debug is False
    # No project reader: no project settings.
    assert parsed.project is None
    assert parsed.database.connect_timeout == 1
    assert parsed.database.replica_read_timeout == 2
    assert [r.port for r in parsed.database.replicas] == [3306, 3307]
    # A replica may carry its own credentials: they are not the primary's.
    assert parsed.database.replicas[1].user == "other"
    assert parsed.database.replicas[0].user == "shop"


@pytest.mark.parametrize("path,value,message", [
    ("secret_key", KeyError, "secret_key: missing"),
    ("secret_key", "short", "secret_key: must be at least 50"),
    ("allowed_hosts", "shop.example.com", "allowed_hosts: expected a list"),
    ("database.primary", KeyError, "database.primary: missing"),
    ("database.replicas.1.port", "3307", "database.replicas[1].port: expected an integer"),
    ("database.connect_timeout", 0, "database.connect_timeout: expected an integer >= 1"),
    ("cache.servers", [], "cache.servers: expected at least one entry"),
    ("media.url", "https://shop.example.com/media", "media.url: must end with '/'"),
    ("media.servers", ["media1/media/"], "media.servers[0]: expected an http(s) URL"),
    ("debug", "no", "debug: expected true or false"),
    ("project.title", 1, "project.title: expected a non-empty string"),
])
def test_bad_key_is_named(path, value, message):
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        config.parse(with_change(path, value), project=read_project)


def read_project(project: config.Reader) -> dict:
    return {"title": project.str("title", "Guestbook")}


def test_the_project_reads_its_own_keys_and_a_typo_in_them_is_refused():
    assert config.parse(with_change("project", {"title": "Ours"}), project=read_project).project == {"title": "Ours"}
    assert config.parse(GOOD, project=read_project).project == {"title": "Guestbook"}
    with pytest.raises(config.ConfigError, match=re.escape("project.titel: unknown key (did you mean title?)")):
        config.parse(with_change("project", {"titel": "Ours"}), project=read_project)
    # Without a reader, any project key is unknown: nothing is silently ignored.
    assert config.parse(GOOD).project is None
    with pytest.raises(config.ConfigError, match=re.escape("project.title: unknown key")):
        config.parse(with_change("project", {"title": "Ours"}))


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(config.ConfigError, match="cannot read the configuration file"):
        config.load(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(config.ConfigError, match="not valid JSON"):
        config.load(broken)


def run_manage(tmp_path, data, *args):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    env = {**os.environ, "STACK_CONFIG": str(path)}
    return subprocess.run([sys.executable, "manage.py", *args], env=env, capture_output=True, text=True,
                          cwd=GUESTBOOK)


def test_startup_stops_naming_the_key(tmp_path):
    done = run_manage(tmp_path, with_change("database.name", KeyError), "check")
    assert done.returncode != 0
    assert "database.name: missing" in done.stderr


def test_check_deploy_is_clean_with_a_production_config(tmp_path):
    done = run_manage(tmp_path, GOOD, "check", "--deploy", "--fail-level", "WARNING")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


@pytest.mark.parametrize("path,message", [
    ("database.replica_read_timout", "database.replica_read_timout: unknown key (did you mean replica_read_timeout?)"),
    ("debgu", "debgu: unknown key (did you mean debug?)"),
    ("cache.socket_timout", "cache.socket_timout: unknown key (did you mean socket_timeout?)"),
    ("database.replicas.1.prot", "database.replicas[1].prot: unknown key (did you mean port?)"),
    ("media.whatever", "media.whatever: unknown key"),
])
def test_an_unknown_key_is_an_error_that_names_it(path, message):
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        config.parse(with_change(path, 1))


SECRETS = ("pw3", "-production-like-secret-")


def test_secrets_never_show_in_a_repr():
    parsed = config.parse(with_change("database.password", "the-db-password"))
    shown = repr(parsed) + str(parsed) + repr(parsed.database.primary) + repr(parsed.secret_key)
    for secret in (*SECRETS, "the-db-password"):
        assert secret not in shown
    # The code that needs them gets the real value.
    assert parsed.database.replicas[1].password == "pw3" and str(parsed.database.replicas[1].password) == "pw3"
    assert parsed.secret_key.encode().startswith(b"s" * 20)


def test_secrets_never_show_in_diffsettings_or_an_error_page(tmp_path):
    data = with_change("debug", True)
    done = run_manage(tmp_path, data, "diffsettings", "--all")
    assert done.returncode == 0, done.stderr
    assert "DATABASES" in done.stdout and "SECRET_KEY" in done.stdout
    for secret in (*SECRETS, "'pw'"):
        assert secret not in done.stdout, secret
    # Django's technical 500 page (DEBUG on), with the settings it lists.
    script = (
        "import django, sys; django.setup()\n"
        "from django.test import RequestFactory\n"
        "from django.views.debug import ExceptionReporter\n"
        "try:\n    raise RuntimeError('boom')\n"
        "except RuntimeError:\n    info = sys.exc_info()\n"
        "print(ExceptionReporter(RequestFactory().get('/'), *info).get_traceback_html())\n"
    )
    path = tmp_path / "config.json"
    page = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=GUESTBOOK,
                          env={**os.environ, "STACK_CONFIG": str(path), "DJANGO_SETTINGS_MODULE": "guestbook.settings"})
    assert page.returncode == 0, page.stderr
    assert "boom" in page.stdout and "CONFIG" in page.stdout
    for secret in SECRETS:
        assert secret not in page.stdout, secret
