import pytest

from exchange_site import redis as redis_


@pytest.mark.django_db
def test_healthz_is_200_when_database_and_redis_answer(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


@pytest.mark.django_db
def test_healthz_is_503_when_redis_is_down(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    redis_.client.cache_clear()
    try:
        response = client.get("/healthz")
    finally:
        redis_.client.cache_clear()
    assert response.status_code == 503
    assert response.json()["redis"].startswith("down")
    assert response.json()["database"] == "ok"


def test_home_page_renders(client, db):
    assert client.get("/").status_code == 200
    assert client.get("/admin/login/").status_code == 200
