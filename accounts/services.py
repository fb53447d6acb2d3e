from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from exchange_site.errors import NotFound, RuleViolation

from .models import ApiToken

User = get_user_model()


def user_create(*, username: str, password: str | None = None, email: str = "", is_staff: bool = False):
    username = (username or "").strip()
    if not username:
        raise RuleViolation("invalid_username", "A username is required.", fields={"username": ["Required."]})
    if password:
        try:
            validate_password(password, User(username=username, email=email))
        except ValidationError as exc:
            raise RuleViolation("weak_password", " ".join(exc.messages), fields={"password": exc.messages}) from None
    try:
        with transaction.atomic():
            user = User(username=username, email=email, is_staff=is_staff, is_superuser=is_staff)
            if password:
                user.set_password(password)
            else:
                user.set_unusable_password()
            user.save()
    except IntegrityError:
        raise RuleViolation(
            "username_taken", f"The username {username!r} is taken.", fields={"username": ["Taken."]}
        ) from None
    return user


def token_create(*, user, name: str = "") -> tuple[ApiToken, str]:
    """A new API key for the user. Returns the row and the key, which is never retrievable again."""
    key = secrets.token_hex(20)
    token = ApiToken.objects.create(user=user, name=name[:64], prefix=key[:8], digest=ApiToken.digest_of(key))
    return token, key


def token_revoke(*, user, token_id: int) -> ApiToken:
    token = ApiToken.objects.filter(user=user, pk=token_id, revoked_at__isnull=True).first()
    if token is None:
        raise NotFound("No such active token.")
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    return token


def user_for_token(*, key: str):
    """The active user a key belongs to, or None."""
    if not key:
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(digest=ApiToken.digest_of(key), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    # Written at most once a minute: bots call many times a second.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user
