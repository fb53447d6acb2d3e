"""Every API answer to a wrong request is in the error format, whatever the method."""

import pytest
from rest_framework.test import APIClient

from accounts.services import token_create


@pytest.mark.django_db
def test_a_post_to_an_unknown_api_path_is_a_404_in_the_error_format(user):
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=user)[1]}")
    response = client.post("/api/v1/nothing-here", {"a": 1}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
