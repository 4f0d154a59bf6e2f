"""``manage.py run_job <command> [args …]``: run a scheduled job on one node at a time, whatever the timers say.

The scheduled jobs (systemd timers ``<project>-job@<command>``) run on the leader only; this is the guard behind that
rule: the job holds a named lock on the primary (MariaDB ``GET_LOCK``) while it runs, so a second node whose
timer fired too (an inventory changed under a running fleet, a node that came back) skips it instead of running
the same job at the same moment. The lock goes with the connection: a node that dies releases it.
"""

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from django_stack.dbfailover.databases import PRIMARY_ALIAS


class Command(BaseCommand):
    help = "Run a management command as a scheduled job, never on two nodes at once."

    def add_arguments(self, parser):
        parser.add_argument("job")
        parser.add_argument("args", nargs="*")

    def handle(self, job, *args, **options):
        connection = connections[PRIMARY_ALIAS]
        # Named after the database: projects sharing a server never block each other.
        name = f"{connection.settings_dict['NAME']}:job:{job}"
        with connection.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, 0)", [name])
            (acquired,) = cursor.fetchone()
        if acquired != 1:
            self.stdout.write(f"job {job}: already running on another node, skipped")
            return
        try:
            call_command(job, *args, stdout=self.stdout, stderr=self.stderr)
        except CommandError:
            raise
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT RELEASE_LOCK(%s)", [name])
