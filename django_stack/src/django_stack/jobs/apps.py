from django.apps import AppConfig


class JobsConfig(AppConfig):
    # Labelled after the package: a project's own "jobs" app keeps its name.
    name = "django_stack.jobs"
    label = "django_stack_jobs"
