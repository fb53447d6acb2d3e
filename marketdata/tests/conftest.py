import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from exchange_site.testing import BASE_DIR, PYTHON, free_port, subprocess_env

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def live_server_url(transactional_db):
    """daphne (HTTP and websockets) serving this run's test database on a free port."""
    port = free_port()
    (BASE_DIR / "artifacts").mkdir(exist_ok=True)
    log = open(BASE_DIR / "artifacts" / f"daphne-{port}.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [str(Path(PYTHON).with_name("daphne")), "-b", "127.0.0.1", "-p", str(port), "exchange_site.asgi:application"],
        env=subprocess_env(
            ALLOWED_HOSTS="127.0.0.1,localhost,testserver", CSRF_TRUSTED_ORIGINS=f"http://127.0.0.1:{port}"
        ),
        cwd=BASE_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        raise RuntimeError("daphne did not start")
    yield url
    process.terminate()
    process.wait(timeout=10)
    log.close()


@pytest.fixture
def browser_page(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread; the test's own database calls are
    # still plain synchronous calls between browser steps.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1366, "height": 768})
        page = context.new_page()
        page.set_default_timeout(15000)
        yield page
        browser.close()
