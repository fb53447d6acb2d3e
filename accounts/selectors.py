from django.contrib.auth import get_user_model

from exchange_site.errors import RuleViolation

from .models import ApiKey, ApiToken


def user_get(*, username: str):
    try:
        return get_user_model().objects.get(username=username)
    except get_user_model().DoesNotExist:
        raise RuleViolation(
            "unknown_user", f"Unknown user {username!r}.", fields={"username": ["Unknown user."]}
        ) from None


def tokens_for_user(*, user):
    return ApiToken.objects.filter(user=user).order_by("-created_at")


def api_keys_for_user(*, user):
    return ApiKey.objects.filter(user=user).order_by("-created_at")
