from __future__ import annotations

import copy
import secrets
import time
from dataclasses import dataclass
from functools import partial

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models.signals import post_save
from django.utils import timezone

from exchange_site.errors import NotFound, RuleViolation
from exchange_site.local_cache import VersionedCache

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
    """Revoke a key: every process stops accepting it at once, and websockets opened with it are closed."""
    token = ApiToken.objects.filter(user=user, pk=token_id, revoked_at__isnull=True).first()
    if token is None:
        raise NotFound("No such active token.")
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])  # post_save below: memos dropped, sockets closed
    return token


def token_auth_group(user_id: int) -> str:
    """The channel-layer group of a user's token-authenticated websockets."""
    return f"auth.{int(user_id)}"


def _token_sockets_close(*, user_id: int, token_id: int) -> None:
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    async_to_sync(get_channel_layer().group_send)(
        token_auth_group(user_id), {"type": "auth.token_revoked", "token_id": token_id}
    )


@dataclass(slots=True)
class _TokenEntry:
    token_id: int
    user: object
    used_written: float  # time.monotonic() when last_used_at was last written by this process


# digest -> _TokenEntry: bots authenticate every request; the key's row changes only on revocation
# (which bumps the memo's version) or when its user is deactivated (seen within the memo's ttl).
_tokens = VersionedCache("api-tokens", ttl=10.0)


def _token_load(digest: str) -> _TokenEntry | None:
    token = (
        ApiToken.objects.select_related("user")
        .filter(digest=digest, revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return _TokenEntry(token_id=token.pk, user=token.user, used_written=time.monotonic())


def token_for_key(*, key: str) -> tuple[int, object] | None:
    """(token id, a copy of its active user) for an API key, or None."""
    if not key or len(key) > 200:
        return None
    entry = _tokens.get(ApiToken.digest_of(key), _token_load)
    if entry is None:
        return None
    if time.monotonic() - entry.used_written > 60:
        # Written at most once a minute: bots call many times a second.
        entry.used_written = time.monotonic()
        ApiToken.objects.filter(pk=entry.token_id).update(last_used_at=timezone.now())
    # A copy: views may set attributes on request.user, and the memo is shared by threads.
    return entry.token_id, copy.copy(entry.user)


def user_for_token(*, key: str):
    """The active user a key belongs to, or None."""
    found = token_for_key(key=key)
    return found[1] if found else None


def _tokens_changed(sender, **kwargs) -> None:
    _tokens.invalidate()


def _token_saved(sender, instance: ApiToken, **kwargs) -> None:
    _tokens.invalidate()
    if instance.revoked_at is not None:
        transaction.on_commit(
            partial(_token_sockets_close, user_id=instance.user_id, token_id=instance.pk), robust=True
        )


# Through token_revoke or the admin (a plain model save) alike: a revoked key is refused at once and
# its websockets are closed; a deactivated user's keys are refused at once.
post_save.connect(_token_saved, sender=ApiToken, dispatch_uid="accounts.token_saved")
post_save.connect(_tokens_changed, sender=User, dispatch_uid="accounts.token_users_changed")
