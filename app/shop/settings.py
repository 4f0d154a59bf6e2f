"""Settings of the shop, read from the configuration file Ansible writes (see django_stack.config).

Nothing here is meant to be edited per environment: every value that differs between the lab, a laptop and
production comes from the configuration file named by ``STACK_CONFIG`` (the web role writes ``/etc/shop/config.json``).
"""

from dataclasses import dataclass
from pathlib import Path

from django_stack import config
from django_stack import settings as stack


@dataclass(frozen=True)
class ShopSettings:
    """The shop's own keys: the ``project`` object of the configuration file."""

    page_size: int
    bench_urls: bool


def _shop_settings(project: config.Reader) -> ShopSettings:
    return ShopSettings(page_size=project.int("page_size", 48, minimum=1),
                        bench_urls=project.bool("bench_urls", False))


BASE_DIR = Path(__file__).resolve().parent.parent
CONFIG = config.load(project=_shop_settings)
# Servers, caches, media, sessions, security and logging, from the file the roles write.
globals().update(stack.from_config(CONFIG, BASE_DIR, logger="shop"))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "accounts",
    "catalog",
    "cart",
    "orders",
    *stack.INSTALLED_APPS,
]

# The read-your-writes pin goes just outside the session middleware: saving a session counts as a write.
MIDDLEWARE = stack.middleware([
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
])

# The benchmark's pages (shop.urls_bench) only where the config asks for them: a lab that `make bench` measures.
ROOT_URLCONF = "shop.urls_bench" if CONFIG.project.bench_urls else "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "shop" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "cart.context_processors.cart_count",
            ],
            # {% slot %} (two-pass pages) in every template without a {% load %}.
            "builtins": [stack.TWOPASS_BUILTINS],
        },
    },
]

STATICFILES_DIRS = [BASE_DIR / "shop" / "static"]
# The pin's name since the shop's first releases: a rolling deploy keeps the pins set by the previous release.
STACK_READ_YOUR_WRITES_COOKIE = "shop_pin"
SHOP_PAGE_SIZE = CONFIG.project.page_size
SHOP_ADMIN_ENABLED = CONFIG.admin_enabled

AUTHENTICATION_BACKENDS = ["accounts.backends.CachedModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "catalog:home"
LOGOUT_REDIRECT_URL = "catalog:home"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
