"""``path("", include("django_stack.health.urls"))`` in a project's root URLconf: ``/healthz``."""

from django.urls import path

from django_stack.health.views import healthz

urlpatterns = [path("healthz", healthz, name="healthz")]
