from django.apps import AppConfig


class MigrationrulesConfig(AppConfig):
    # Labelled after the package: a project's own "migrationrules" app keeps its name.
    name = "django_stack.migrationrules"
    label = "django_stack_migrationrules"
