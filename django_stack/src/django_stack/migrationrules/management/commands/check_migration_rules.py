"""``manage.py check_migration_rules [--unapplied] [app_label ...]``: exit 1 if a migration breaks the rules.

Run by the tests on every migration of the project's apps, and by the deploy with ``--unapplied`` before it
migrates. The rules and the safe alternative: ``migrationrules.rules``.
"""

from django.core.management.base import BaseCommand, CommandError

from django_stack.migrationrules import rules


class Command(BaseCommand):
    help = "Refuse migrations that rename, drop or narrow (zero-downtime rules)."

    def add_arguments(self, parser):
        parser.add_argument("app_labels", nargs="*")
        parser.add_argument("--unapplied", action="store_true", help="check only migrations not applied yet")
        parser.add_argument("--database", default="default")

    def handle(self, *app_labels, unapplied, database, **options):
        violations, contracts = rules.check(app_labels or None, unapplied_only=unapplied, database=database)
        for line in contracts:
            self.stdout.write(f"allowed  {line}")
        if violations:
            for violation in violations:
                self.stderr.write(f"refused  {violation}")
            raise CommandError(
                f"{len(violations)} operation(s) break the zero-downtime migration rules. Add the new column or "
                "table instead and remove the old one in a later release, in a migration marked "
                "zero_downtime_contract (see README: Zero-downtime migrations)."
            )
        self.stdout.write("migration rules: ok")
