"""The settings a project needs to run on the stack, built from the configuration file the roles write.

A project's settings module adopts the stack in a few lines::

    from pathlib import Path
    from django_stack import config, settings as stack

    BASE_DIR = Path(__file__).resolve().parent.parent
    CONFIG = config.load()
    globals().update(stack.from_config(CONFIG, BASE_DIR))
    INSTALLED_APPS = [..., *stack.INSTALLED_APPS]
    MIDDLEWARE = stack.middleware([...Django's list...])

Everything here can be overridden after the ``update`` (it is a plain dict of Django settings).
"""

from __future__ import annotations

from pathlib import Path

from django_stack import release
from django_stack.config import Config
from django_stack.dbfailover import databases

# The stack's Django apps: two-pass pages ({% slot %}), /healthz, the migration rules, run_job.
INSTALLED_APPS = [
    "django_stack.twopass",
    "django_stack.health",
    "django_stack.migrationrules",
    "django_stack.jobs",
]

READ_YOUR_WRITES_MIDDLEWARE = "django_stack.replicas.middleware.ReadYourWritesMiddleware"
SESSION_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"
# Pages compressed by Django, not by the load balancer: Django's GZipMiddleware (4.2+) pads each compressed response
# with random bytes, which mitigates BREACH on pages that carry a CSRF token (HAProxy's compression does not). The
# stack's subclass compresses at a faster level (django_stack.compression).
GZIP_MIDDLEWARE = "django_stack.compression.GZipMiddleware"
DJANGO_GZIP_MIDDLEWARE = "django.middleware.gzip.GZipMiddleware"
TWOPASS_BUILTINS = "django_stack.twopass.templatetags.twopass"


def middleware(names: list[str], *, compress: bool = True) -> list[str]:
    """``names`` with the read-your-writes pin just outside the session middleware (a session save is a write),
    and with ``compress`` the stack's GZipMiddleware first (outermost: it compresses what every other middleware
    made of the response). ``compress=False`` leaves it out; Django's own, listed in ``names``, is replaced."""
    names = [n for n in names if n not in (READ_YOUR_WRITES_MIDDLEWARE, GZIP_MIDDLEWARE, DJANGO_GZIP_MIDDLEWARE)]
    at = names.index(SESSION_MIDDLEWARE) if SESSION_MIDDLEWARE in names else len(names)
    names = [*names[:at], READ_YOUR_WRITES_MIDDLEWARE, *names[at:]]
    return [GZIP_MIDDLEWARE, *names] if compress else names


def from_config(config: Config, base_dir: str | Path, *, logger: str | None = None) -> dict:
    """Django settings for the servers, caches, media and security the configuration file describes.

    ``base_dir``: the project's root (a relative ``static_root`` is under it; the release id hashes it).
    ``logger``: the project's own logger name, given the file's ``log_level`` like the stack's loggers.
    """
    base_dir = Path(base_dir)
    static_root = base_dir / config.static_root
    values = {
        "SECRET_KEY": config.secret_key,
        "DEBUG": config.debug,
        "ALLOWED_HOSTS": list(config.allowed_hosts),
        "CSRF_TRUSTED_ORIGINS": list(config.csrf_trusted_origins),
        # "default" is the primary, replica_1..N its replicas.
        "DATABASES": databases.build(config.database),
        "DATABASE_ROUTERS": ["django_stack.replicas.router.ReplicaRouter"],
        "STACK_READ_YOUR_WRITES_SECONDS": config.read_your_writes_seconds,
        "CACHES": {
            "default": {
                "BACKEND": "django_stack.memcache_backend.backend.MemcachedCache",
                "LOCATION": list(config.cache.servers),
                "KEY_PREFIX": config.cache.key_prefix,
                "TIMEOUT": 300,
                "OPTIONS": {"socket_timeout": config.cache.socket_timeout, "dead_retry": config.cache.dead_retry},
            }
        },
        # Read from memcached, written through to the database: sessions survive a memcached restart.
        "SESSION_ENGINE": "django_stack.sessions",
        "STORAGES": {
            "default": {"BACKEND": "django_stack.mediastore.storage.MediaServerStorage"},
            "staticfiles": {"BACKEND": "django_stack.staticfiles.GzipManifestStaticFilesStorage"},
        },
        "STATIC_URL": "/static/",
        "STATIC_ROOT": static_root,
        # Two-pass pages are cached per release: a deploy or a rollback shows on every page at once.
        "TWOPASS_RELEASE": release.release_id(base_dir, exclude=(static_root,)),
        "MEDIA_URL": config.media.url,
        "STACK_MEDIA_SERVERS": list(config.media.servers),
        "STACK_MEDIA_TIMEOUT": config.media.timeout,
        # Uploads stay in memory on their way to the media servers: nothing lands on a web node's disk.
        "FILE_UPLOAD_HANDLERS": ["django.core.files.uploadhandler.MemoryFileUploadHandler"],
        "FILE_UPLOAD_MAX_MEMORY_SIZE": 10 * 1024 * 1024,
        "DATA_UPLOAD_MAX_MEMORY_SIZE": 10 * 1024 * 1024,
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        # Behind the load balancer, which terminates TLS and sets X-Forwarded-Proto.
        "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "X_FRAME_OPTIONS": "DENY",
        "LOGGING": logging(config.log_level, logger),
    }
    if config.https:
        values.update({
            "SECURE_SSL_REDIRECT": True,
            # The load balancer's health checks come over plain HTTP.
            "SECURE_REDIRECT_EXEMPT": [r"^healthz$"],
            "SESSION_COOKIE_SECURE": True,
            "CSRF_COOKIE_SECURE": True,
            "SECURE_HSTS_SECONDS": config.hsts_seconds,
            "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
            # Only a header: the site is on the browsers' preload list once its owner submits it.
            "SECURE_HSTS_PRELOAD": config.hsts_preload,
        })
    return values


def logging(level: str, logger: str | None = None) -> dict:
    """Log to stderr (uWSGI's log, the journal): the stack's loggers and ``logger`` at ``level``."""
    handler = {"handlers": ["stderr"], "level": level, "propagate": False}
    loggers = {"django_stack": handler, "django.request": {**handler, "level": "ERROR"}}
    if logger:
        loggers[logger] = handler
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
        "root": {"handlers": ["stderr"], "level": "WARNING"},
        "loggers": loggers,
    }
