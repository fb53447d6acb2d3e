"""Production settings: secure unless DEBUG says otherwise; `check --deploy` is clean."""

import os
import secrets
import subprocess
from pathlib import Path

import pytest

from exchange_site.testing import BASE_DIR, PYTHON


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    """manage.py in a fresh process with only the given settings, as a deployment would start it."""
    base = {k: v for k, v in os.environ.items() if k not in {"PYTEST_VERSION", "DEBUG", "SECRET_KEY"}}
    return subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=BASE_DIR,
        # ENV_FILE="": no local .env either (make writes one with DEBUG=1 for local use).
        env={**base, "ENV_FILE": "", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


PRODUCTION = {"SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "exchange.example.com"}


def test_check_deploy_is_clean_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_debug_is_off_and_https_is_on_unless_set():
    script = (
        "from django.conf import settings as s; "
        "print(s.DEBUG, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS)"
    )
    result = manage("shell", "-v", "0", "-c", script, **PRODUCTION)
    assert result.stdout.split() == ["False", "True", "True", "True", "31536000"], result.stderr


def test_the_development_secret_key_is_refused_when_debug_is_off():
    result = manage("check", ALLOWED_HOSTS="exchange.example.com")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "SECRET_KEY" in result.stderr
    # Local use says DEBUG=1 and keeps the development key.
    assert manage("check", DEBUG="1").returncode == 0


@pytest.mark.slow
def test_static_files_are_served_in_production(tmp_path):
    """With DEBUG off, daphne serves what collectstatic gathered (ServeStatic), with caching headers."""
    import socket
    import time
    import urllib.request

    env = {**PRODUCTION, "ALLOWED_HOSTS": "127.0.0.1", "SECURE_SSL_REDIRECT": "false"}
    static_root = BASE_DIR / "staticfiles"
    collected = manage("collectstatic", "--noinput", "-v", "0", **env)
    assert collected.returncode == 0, collected.stderr
    css = next(path for path in (static_root / "css").iterdir() if path.suffix == ".css")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = {k: v for k, v in os.environ.items() if k not in {"PYTEST_VERSION", "DEBUG", "SECRET_KEY"}}
    process = subprocess.Popen(
        [str(Path(PYTHON).with_name("daphne")), "-p", str(port), "exchange_site.asgi:application"],
        cwd=BASE_DIR,
        # ENV_FILE="": no local .env either (make writes one with DEBUG=1 for local use).
        env={**base, "ENV_FILE": "", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/static/css/{css.name}"
        deadline = time.monotonic() + 30
        while True:
            try:
                response = urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert response.status == 200
        assert response.read() == css.read_bytes()
        assert "max-age" in response.headers["Cache-Control"]
    finally:
        process.terminate()
        process.wait(timeout=10)
