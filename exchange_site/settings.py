"""Settings come from the environment (see .env.example); the defaults run on a local machine."""

import os
import uuid
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env("SECRET_KEY", default="dev-only-not-secret-change-me")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=["http://127.0.0.1:8000", "http://localhost:8000"])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "channels",
    "accounts",
    "ledger",
    "orders",
    "matching",
    "marketdata",
    "audit",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "exchange_site.urls"
ASGI_APPLICATION = "exchange_site.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default="mysql://root:@127.0.0.1:3306/exchange"),
}
DATABASES["default"].setdefault("OPTIONS", {})
DATABASES["default"]["OPTIONS"].update(
    {
        "charset": "utf8mb4",
        "init_command": "SET sql_mode='STRICT_TRANS_TABLES', innodb_lock_wait_timeout=10",
        # READ COMMITTED: a locking read sees the latest committed row, and plain reads
        # never take gap locks, so concurrent order placement does not deadlock on them.
        "isolation_level": "read committed",
    }
)
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
# pytest sets PYTEST_VERSION before it imports these settings.
RUNNING_TESTS = "PYTEST_VERSION" in os.environ
# Two test runs at once (xdist workers, helpers, two checkouts) must not share a database:
# pytest-django appends the xdist worker id, TEST_RUN_ID (default: this process) separates runs.
TEST_RUN_ID = env("TEST_RUN_ID", default=str(os.getpid()) if RUNNING_TESTS else "")
DATABASES["default"]["TEST"] = {
    "NAME": "test_" + DATABASES["default"]["NAME"] + (f"_{TEST_RUN_ID}" if TEST_RUN_ID else ""),
    "CHARSET": "utf8mb4",
    "COLLATION": "utf8mb4_unicode_ci",
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

# Redis: one server; every key, queue and channel-layer group this deployment uses starts with
# REDIS_PREFIX, so two test runs (or two deployments) on one Redis never see each other's data.
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
REDIS_PREFIX = env("REDIS_PREFIX", default=f"test-{uuid.uuid4().hex[:10]}" if RUNNING_TESTS else "exchange")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{REDIS_PREFIX}:asgi", "capacity": 2000},
    }
}

CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_DEFAULT_QUEUE = f"{REDIS_PREFIX}.default"
CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": f"{REDIS_PREFIX}:celery:"}
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE_FILENAME = env(
    "CELERY_BEAT_SCHEDULE_FILENAME", default=str(BASE_DIR / ".make" / "celerybeat-schedule")
)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "exchange_site.errors.api_exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
    "DEFAULT_THROTTLE_RATES": {"user": env("API_RATE_PER_USER", default="6000/min")},
}

# Money: every amount column has these digits and places, wide enough for any asset's precision.
AMOUNT_MAX_DIGITS = 36
AMOUNT_DECIMAL_PLACES = 18

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}

# Matching shards: commands read from Redis and settled per transaction; how often (seconds of an
# empty queue) a shard looks in the database for orders whose queue message was lost.
SHARD_BATCH_SIZE = env.int("SHARD_BATCH_SIZE", default=2000)
SHARD_SWEEP_SECONDS = env.float("SHARD_SWEEP_SECONDS", default=2.0)

# Monitoring: GET /metrics is open for Prometheus on the internal network; false = staff or loopback only.
METRICS_PUBLIC = env.bool("METRICS_PUBLIC", default=True)
INSTALLED_APPS += ["monitoring"]
MIDDLEWARE += ["monitoring.middleware.OrderOutcomeMiddleware"]
