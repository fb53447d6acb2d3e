"""Settings come from the environment (see .env.example); the defaults run on a local machine."""

import os
import uuid
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local machine's .env (make writes one with DEBUG=1); ENV_FILE names another, or "" for none, as a
# deployment that sets its whole environment itself.
ENV_FILE = os.environ.get("ENV_FILE", str(BASE_DIR / ".env"))
if ENV_FILE:
    environ.Env.read_env(ENV_FILE, overwrite=False)

# A test run, and every process it starts (they inherit this environment), runs as a local machine
# does: DEBUG on and a key that is not secret. pytest sets PYTEST_VERSION before it imports settings.
if "PYTEST_VERSION" in os.environ:
    os.environ.setdefault("DEBUG", "true")
    os.environ.setdefault("SECRET_KEY", "dev-only-not-secret-change-me")

# Secure by default: DEBUG only where it is asked for (`make run` asks, for local use and the demo).
DEBUG = env.bool("DEBUG", default=False)
DEV_SECRET_KEY = "dev-only-not-secret-change-me"
SECRET_KEY = env("SECRET_KEY", default=DEV_SECRET_KEY)
if not DEBUG and SECRET_KEY == DEV_SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is the development key while DEBUG is off: set SECRET_KEY to a long random value "
        "(python -c 'import secrets; print(secrets.token_urlsafe(50))'), or DEBUG=1 on a local machine."
    )
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
    "fixgateway",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "funding",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # MariaDB or Redis down: 503 in the API's error format, not a 500 (see exchange_site/errors.py).
    "exchange_site.errors.ServiceUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication: marks request.user verified when the session carries a confirmed OTP device.
    "django_otp.middleware.OTPMiddleware",
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
        # MariaDB unreachable: a request fails (503) in seconds instead of waiting on the OS timeout.
        "connect_timeout": env.int("DATABASE_CONNECT_TIMEOUT", default=3),
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
# redis-py 8 reads with a 5 s socket timeout, and channels_redis waits up to 5 s (BZPOPMIN) for a
# consumer's next message: an idle websocket's read timed out and its consumer died. A longer one:
CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] = [{"address": REDIS_URL, "socket_timeout": 30}]

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

# Matching shards: commands read from Redis and settled per transaction; how often (seconds, under
# load too) a shard looks in the database for orders whose queue message was lost.
SHARD_BATCH_SIZE = env.int("SHARD_BATCH_SIZE", default=2000)
SHARD_SWEEP_SECONDS = env.float("SHARD_SWEEP_SECONDS", default=2.0)

# FIX 4.4 acceptor (manage.py run_fix): where it listens, and the threads its sessions' database calls use.
FIX_HOST = env("FIX_HOST", default="127.0.0.1")
FIX_PORT = env.int("FIX_PORT", default=9878)
FIX_DB_THREADS = env.int("FIX_DB_THREADS", default=4)
# Funding: deposits confirmed at once without an operator, up to this much per user, asset and UTC
# day ("USD=100000,BTC=10"; a bare number applies to every asset). Empty = off: every deposit waits
# for an operator. For demos only.
FUNDING_DEMO_DEPOSIT_LIMIT = env("FUNDING_DEMO_DEPOSIT_LIMIT", default="")
# Admin two-factor sign-in (django-otp TOTP): the issuer shown in authenticator apps.
OTP_TOTP_ISSUER = env("OTP_TOTP_ISSUER", default="Exchange")
# The active matching shard refreshes shard:K:alive with this time to live; order placement is
# refused (503 market_unavailable) when the market's shard has not been alive for that long.
SHARD_ALIVE_SECONDS = env.float("SHARD_ALIVE_SECONDS", default=5.0)
# Off under pytest (tests place orders with no shard running) unless a test turns it on.
SHARD_ALIVE_REQUIRED = env.bool("SHARD_ALIVE_REQUIRED", default=not RUNNING_TESTS)
# API contract: OpenAPI schema and docs, signed requests, rate limits, body limits, log-in lockout.
INSTALLED_APPS += ["drf_spectacular", "drf_spectacular_sidecar", "axes"]
# Axes last: it answers a locked-out log-in before the view runs.
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]
AUTHENTICATION_BACKENDS = ["accounts.backends.LoginLockoutBackend", "django.contrib.auth.backends.ModelBackend"]

# Shared by every web process, so a rate limit holds across all of them (one Redis, this run's prefix).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": f"{REDIS_PREFIX}:cache",
    }
}

REST_FRAMEWORK.update(
    {
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "accounts.authentication.ApiTokenAuthentication",
            "accounts.authentication.SignedRequestAuthentication",
            "rest_framework.authentication.SessionAuthentication",
        ],
        "DEFAULT_PERMISSION_CLASSES": [
            "rest_framework.permissions.IsAuthenticated",
            "accounts.permissions.ApiKeyScope",
        ],
        "DEFAULT_PARSER_CLASSES": ["exchange_site.parsers.LimitedJSONParser"],
        "DEFAULT_SCHEMA_CLASS": "exchange_site.schema.AutoSchema",
        "DEFAULT_THROTTLE_CLASSES": [
            "exchange_site.throttling.UserRateThrottle",
            "exchange_site.throttling.AnonRateThrottle",
        ],
        # Generous by default: the demo bots and a load test of hundreds of orders a second from a
        # few users stay well under them. "N/s", "N/min", "N/h", "N/day", or "N/<k><unit>" ("5/10s").
        "DEFAULT_THROTTLE_RATES": {
            "user": env("API_RATE_PER_USER", default="60000/min"),
            "anon": env("API_RATE_PER_IP", default="6000/min"),
        },
        # Clients' addresses come from REMOTE_ADDR unless a known number of proxies sits in front.
        "NUM_PROXIES": env.int("API_NUM_PROXIES", default=0),
    }
)

# A request body larger than this is refused with 413 (the API) before it is parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("API_MAX_BODY_BYTES", default=1024 * 1024)
# JSON nested deeper than this is refused with 400, before Python's parser recurses into it.
API_MAX_JSON_DEPTH = env.int("API_MAX_JSON_DEPTH", default=32)

# Signed requests: how far X-API-Timestamp may be from the server's clock.
API_SIGNATURE_WINDOW_SECONDS = env.float("API_SIGNATURE_WINDOW_SECONDS", default=5.0)
# Websocket: each connection may send this many messages in a burst, refilled at this rate per
# second; past that it gets "rate_limited" errors, and is closed after this many in a row.
# Generous: order entry over the socket at hundreds of orders a second stays under it.
WS_MESSAGE_BURST = env.int("WS_MESSAGE_BURST", default=2000)
WS_MESSAGES_PER_SECOND = env.float("WS_MESSAGES_PER_SECOND", default=1000.0)
WS_MESSAGE_STRIKES = env.int("WS_MESSAGE_STRIKES", default=50)

SPECTACULAR_SETTINGS = {
    "TITLE": "Exchange API",
    "DESCRIPTION": (
        "Bots, the browser UI and the project's tests speak this API. JSON in and out; amounts are "
        'decimal strings. Errors are a 4xx with `{"error": {"code", "message", "fields"}}`. '
        "Lists are newest first; the next page's cursor is in the `X-Next-Cursor` response header "
        "(pass it back as `?cursor=`). Rate limits answer 429 `rate_limited` with `Retry-After`."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and the docs are public, like the contract itself.
    "SERVE_AUTHENTICATION": [],
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI's assets come from the drf-spectacular-sidecar package: the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": ["exchange_site.schema.postprocess"],
}

# Log-in lockout for the browser: this many failures for one username from one address lock it.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("LOGIN_COOLOFF_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "accounts/lockout.html"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
# Security. Off only under DEBUG (a local machine on plain http); each can be set from the environment
# (a deployment whose TLS ends at a proxy that speaks plain http to daphne sets SECURE_PROXY_SSL_HEADER).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Health probes come over plain http from inside the platform.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Static files: `collectstatic` gathers them into STATIC_ROOT, which the ASGI application serves
# (ServeStatic) when DEBUG is off; under DEBUG Django finds them in the source folders.
# Redis: a client call that cannot connect, or gets no answer, fails within these many seconds,
# so a request fails fast with a 503 rather than hanging while Redis is down.
REDIS_CONNECT_TIMEOUT = env.float("REDIS_CONNECT_TIMEOUT", default=0.5)
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", default=2.0)

# The beat worker runs ledger_check this often (seconds); the result is kept in Redis.
LEDGER_CHECK_SECONDS = env.float("LEDGER_CHECK_SECONDS", default=300.0)
# Order entry: threads per web process that run the order API and websocket orders with persistent
# database connections (0: inline, as tests need: their data lives in the test's own connection).
ORDER_DB_THREADS = env.int("ORDER_DB_THREADS", default=0 if RUNNING_TESTS else 16)
# The API's fast lane (exchange_site/fast_lane.py): token order entry and public depth without
# Django's request cycle. Off: every request goes through Django (the same answers, slower).
API_FAST_LANE = env.bool("API_FAST_LANE", default=True)
# Monitoring: GET /metrics is open for Prometheus on the internal network; false = staff or loopback only.
METRICS_PUBLIC = env.bool("METRICS_PUBLIC", default=True)
INSTALLED_APPS += ["monitoring"]
MIDDLEWARE += ["monitoring.middleware.OrderOutcomeMiddleware"]
