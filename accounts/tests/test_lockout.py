"""Browser log-in lockout after repeated failures (django-axes)."""

import pytest
from axes.utils import reset

pytestmark = pytest.mark.django_db


def log_in(client, username, password):
    return client.post("/accounts/login/", {"username": username, "password": password})


def test_repeated_failures_lock_the_log_in_with_a_clear_page(client, user, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert log_in(client, user.username, "wrong").status_code == 200
    locked = log_in(client, user.username, "wrong")
    assert locked.status_code == 429
    assert b"Too many failed log-ins" in locked.content
    # Even the right password is refused while locked.
    assert log_in(client, user.username, "correct-horse-42").status_code == 429
    # Another user from the same address is not locked out.
    from accounts.tests.factories import UserFactory

    other = UserFactory()
    assert log_in(client, other.username, "correct-horse-42").status_code == 302

    reset(username=user.username)
    assert log_in(client, user.username, "correct-horse-42").status_code == 302


def test_a_success_clears_earlier_failures(client, user, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in(client, user.username, "wrong")
    assert log_in(client, user.username, "correct-horse-42").status_code == 302
    client.post("/accounts/logout/")
    assert log_in(client, user.username, "wrong").status_code == 200


def test_the_test_clients_log_in_still_works(client, user):
    assert client.login(username=user.username, password="correct-horse-42")
    assert client.get("/accounts/profile/").status_code == 200
