"""The guestbook: a startproject-sized Django project that adopts django_stack in a few lines.

It is the second project of the stack's tests: the package's tests run against it, and molecule's db scenario
deploys it through the same roles as the shop. Nothing here is the shop's.
"""

from pathlib import Path

from django_stack import config
from django_stack import settings as stack

BASE_DIR = Path(__file__).resolve().parent.parent
# Servers, secrets and the project's own keys ("project": {"title": ...}) from the file the roles write.
CONFIG = config.load(project=lambda project: {"title": project.str("title", "Guestbook")})
globals().update(stack.from_config(CONFIG, BASE_DIR, logger="guestbook"))

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "guestbook",
    *stack.INSTALLED_APPS,
]
MIDDLEWARE = stack.middleware([
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
])
ROOT_URLCONF = "guestbook.urls"
WSGI_APPLICATION = "guestbook.wsgi.application"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {
        "context_processors": ["django.template.context_processors.request"],
        "builtins": [stack.TWOPASS_BUILTINS],
    },
}]
GUESTBOOK_TITLE = CONFIG.project["title"]
USE_TZ = True
TIME_ZONE = "UTC"
