"""Settings of the shop, read from the configuration file Ansible writes (see shop.config).

Nothing here is meant to be edited per environment: every value that differs between the lab, a laptop and
production comes from the configuration file named by ``SHOP_CONFIG`` (default ``/etc/shop/shop.json``).
"""

from pathlib import Path

from dbfailover import databases
from shop import config, release

BASE_DIR = Path(__file__).resolve().parent.parent
CONFIG = config.load()

SECRET_KEY = CONFIG.secret_key
DEBUG = CONFIG.debug
ALLOWED_HOSTS = list(CONFIG.allowed_hosts)
CSRF_TRUSTED_ORIGINS = list(CONFIG.csrf_trusted_origins)

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
    "twopass",
    "health",
    "migrationrules",
    "jobs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Outside the session middleware, so that saving a session counts as a write (read-your-writes).
    "replicas.middleware.ReadYourWritesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# The benchmark's pages (shop.urls_bench) only where the config asks for them: a lab that `make bench` measures.
ROOT_URLCONF = "shop.urls_bench" if CONFIG.bench_urls else "shop.urls"
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
            "builtins": ["twopass.templatetags.twopass"],
        },
    },
]

# Databases: "default" is the primary, replica_1..N its replicas (dbfailover.databases).
DATABASES = databases.build(CONFIG.database)
DATABASE_ROUTERS = ["replicas.router.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
SHOP_READ_YOUR_WRITES_SECONDS = CONFIG.read_your_writes_seconds

CACHES = {
    "default": {
        "BACKEND": "memcache_backend.backend.MemcachedCache",
        "LOCATION": list(CONFIG.cache.servers),
        "KEY_PREFIX": CONFIG.cache.key_prefix,
        "TIMEOUT": 300,
        "OPTIONS": {"socket_timeout": CONFIG.cache.socket_timeout, "dead_retry": CONFIG.cache.dead_retry},
    }
}
# Sessions: read from memcached, written through to the database (they survive a memcached restart).
SESSION_ENGINE = "shop.sessions"

STORAGES = {
    "default": {"BACKEND": "mediastore.storage.MediaServerStorage"},
    "staticfiles": {"BACKEND": "shop.staticfiles.GzipManifestStaticFilesStorage"},
}
STATIC_URL = "/static/"
# Relative to the release (each release collects its own), or absolute.
STATIC_ROOT = BASE_DIR / CONFIG.static_root
STATICFILES_DIRS = [BASE_DIR / "shop" / "static"]
# Two-pass pages are cached per release (shop.release): a deploy or a rollback shows on every page at once.
TWOPASS_RELEASE = release.release_id(BASE_DIR, exclude=(STATIC_ROOT,))
MEDIA_URL = CONFIG.media.url
SHOP_MEDIA_SERVERS = list(CONFIG.media.servers)
SHOP_MEDIA_TIMEOUT = CONFIG.media.timeout
# Uploads stay in memory on their way to the media servers: nothing lands on a web node's disk.
FILE_UPLOAD_HANDLERS = ["django.core.files.uploadhandler.MemoryFileUploadHandler"]
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

SHOP_PAGE_SIZE = CONFIG.page_size
SHOP_ADMIN_ENABLED = CONFIG.admin_enabled

AUTHENTICATION_BACKENDS = ["accounts.backends.CachedModelBackend"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "catalog:home"
LOGOUT_REDIRECT_URL = "catalog:home"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# Behind the load balancer, which terminates TLS and sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if CONFIG.https:
    SECURE_SSL_REDIRECT = True
    # The load balancer's health checks come over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = CONFIG.hsts_seconds
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    # Only a header: the site is on the browsers' preload list once its owner submits it (hstspreload.org).
    SECURE_HSTS_PRELOAD = CONFIG.hsts_preload
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
    "loggers": {
        "shop": {"handlers": ["stderr"], "level": CONFIG.log_level, "propagate": False},
        "django.request": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
    },
}
