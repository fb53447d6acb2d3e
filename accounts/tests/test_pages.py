import re

import pytest
from django.contrib.auth import get_user_model

from accounts.models import ApiToken

pytestmark = pytest.mark.django_db


def test_sign_up_logs_in_and_log_out_logs_out(client):
    response = client.post(
        "/accounts/signup/",
        {"username": "newbie", "email": "", "password1": "a-Strong-pass-91", "password2": "a-Strong-pass-91"},
    )
    assert response.status_code == 302
    assert client.get("/accounts/profile/").status_code == 200
    client.post("/accounts/logout/")
    assert client.get("/accounts/profile/").status_code == 302


def test_sign_up_with_a_weak_password_shows_the_error(client):
    response = client.post("/accounts/signup/", {"username": "x", "password1": "123", "password2": "123"})
    assert response.status_code == 200
    assert b"too short" in response.content
    assert not get_user_model().objects.filter(username="x").exists()


def test_log_in_page(client, user):
    assert client.get("/accounts/login/").status_code == 200
    response = client.post("/accounts/login/", {"username": user.username, "password": "correct-horse-42"})
    assert response.status_code == 302


def test_profile_shows_a_new_token_once_and_revokes_it(client, user):
    client.force_login(user)
    page = client.post("/accounts/profile/", {"name": "my bot"}).content.decode()
    key = re.search(r'data-testid="new-token">([0-9a-f]{40})<', page).group(1)
    token = ApiToken.objects.get(user=user)
    assert token.digest == ApiToken.digest_of(key)
    assert key not in client.get("/accounts/profile/").content.decode()
    client.post(f"/accounts/profile/tokens/{token.id}/revoke/")
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_a_user_cannot_revoke_another_users_token(client, user):
    from accounts.services import token_create
    from accounts.tests.factories import UserFactory

    other = UserFactory()
    token, _ = token_create(user=other)
    client.force_login(user)
    client.post(f"/accounts/profile/tokens/{token.id}/revoke/")
    token.refresh_from_db()
    assert token.revoked_at is None
