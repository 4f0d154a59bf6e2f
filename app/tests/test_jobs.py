"""Scheduled jobs never run on two nodes at once: run_job holds a named lock on the primary."""

import threading

from django.core.management import call_command
from django.db import connections


def test_a_job_runs_when_no_other_node_runs_it(capsys):
    call_command("run_job", "refresh_cache")
    assert "refreshed" in capsys.readouterr().out


def test_a_job_running_elsewhere_is_skipped(capsys):
    held, release, done = threading.Event(), threading.Event(), threading.Event()

    def other_node():
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(CONCAT(DATABASE(), ':job:refresh_cache'), 0)")
            assert cursor.fetchone()[0] == 1
            held.set()
            release.wait(10)
            cursor.execute("SELECT RELEASE_LOCK(CONCAT(DATABASE(), ':job:refresh_cache'))")
        connections["default"].close()
        done.set()

    thread = threading.Thread(target=other_node)
    thread.start()
    try:
        assert held.wait(10)
        call_command("run_job", "refresh_cache")
        out = capsys.readouterr().out
        assert "already running on another node, skipped" in out and "refreshed" not in out
    finally:
        release.set()
        thread.join(10)
    call_command("run_job", "refresh_cache")
    assert "refreshed" in capsys.readouterr().out
