from django.apps import AppConfig


class HealthConfig(AppConfig):
    # Labelled after the package: a project's own "health" app keeps its name.
    name = "django_stack.health"
    label = "django_stack_health"
