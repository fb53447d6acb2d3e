import factory
from django.contrib.auth import get_user_model


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"trader{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-42")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


def signed_headers(
    *, key_id: str, secret: str, method: str, path: str, body: bytes = b"", timestamp: int | None = None
):
    """The headers of a request signed as API.md says (for Django's test client: HTTP_* names)."""
    import time

    from accounts.services import signature_of

    stamp = str(timestamp if timestamp is not None else int(time.time() * 1000))
    signature = signature_of(secret=secret, timestamp=stamp, method=method, path=path, body=body)
    return {"HTTP_X_API_KEY": key_id, "HTTP_X_API_TIMESTAMP": stamp, "HTTP_X_API_SIGNATURE": signature}
