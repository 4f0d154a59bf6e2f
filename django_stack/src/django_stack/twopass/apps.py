from django.apps import AppConfig


class TwopassConfig(AppConfig):
    # Labelled after the package: a project's own "twopass" app keeps its name.
    name = "django_stack.twopass"
    label = "django_stack_twopass"
