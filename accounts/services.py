from __future__ import annotations

import copy
import hashlib
import hmac
import math
import secrets
import time
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models.signals import post_save
from django.utils import timezone

from audit.services import audit_record
from exchange_site import redis as redis_
from exchange_site.errors import NotFound, RuleViolation
from exchange_site.local_cache import VersionedCache

from .keyring import secret_decrypt, secret_encrypt
from .models import ApiKey, ApiToken

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


# Operator revocations (admin) --------------------------------------------------------------------


def token_revoke_by_operator(*, token: ApiToken, operator, reason: str = "") -> ApiToken:
    """An operator revokes a user's token; recorded in the audit log in the same transaction."""
    with transaction.atomic():
        # A locked row and a model save, not an UPDATE: the save's signal drops every process's token
        # memo and closes the websockets opened with this token.
        token = ApiToken.objects.select_for_update().get(pk=token.pk)
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            audit_record(
                actor=operator,
                action="api_token.revoke",
                target=f"token {token.prefix}… of {token.user}",
                reason=reason,
            )
    token.refresh_from_db()
    return token


# API key pairs for signed requests ---------------------------------------------------------------


def scopes_parse(*, scopes: str | list[str]) -> str:
    """Normalised scopes text ("read" or "read,trade"): every key reads; "trade" adds orders and funds."""
    items = scopes.split(",") if isinstance(scopes, str) else list(scopes)
    wanted = {item.strip().lower() for item in items if item.strip()}
    unknown = wanted - set(ApiKey.Scope.values)
    if unknown:
        raise RuleViolation(
            "invalid_scopes",
            f"Unknown scope {', '.join(sorted(unknown))}; scopes are read and trade.",
            fields={"scopes": ["read, trade"]},
        )
    wanted.add(ApiKey.Scope.READ)
    return ",".join(scope for scope in ApiKey.Scope.values if scope in wanted)


def api_key_create(*, user, name: str = "", scopes: str | list[str] = "read,trade") -> tuple[ApiKey, str]:
    """A new key pair. Returns the row and the secret, which is never shown again."""
    secret = secrets.token_hex(32)
    api_key = ApiKey.objects.create(
        user=user,
        name=name[:64],
        key_id=secrets.token_hex(12),
        secret_encrypted=secret_encrypt(secret),
        scopes=scopes_parse(scopes=scopes),
    )
    return api_key, secret


def api_key_revoke(*, user, api_key_id: int) -> ApiKey:
    """The owner revokes one of their keys."""
    api_key = ApiKey.objects.filter(user=user, pk=api_key_id, revoked_at__isnull=True).first()
    if api_key is None:
        raise NotFound("No such active API key.")
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked_at"])
    return api_key


def api_key_revoke_by_operator(*, api_key: ApiKey, operator, reason: str = "") -> ApiKey:
    """An operator revokes a user's key; recorded in the audit log in the same transaction."""
    with transaction.atomic():
        updated = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if updated:
            audit_record(
                actor=operator,
                action="api_key.revoke",
                target=f"api key {api_key.key_id} of {api_key.user}",
                reason=reason,
            )
    api_key.refresh_from_db()
    return api_key


class SignatureRefused(Exception):
    """A signed request that is refused; ``code`` tells the client why (401)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def signature_of(*, secret: str, timestamp: str, method: str, path: str, body: bytes) -> str:
    """hex HMAC-SHA256(secret, timestamp + METHOD + path_with_query + body), as API.md defines it."""
    message = timestamp.encode() + method.upper().encode() + path.encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_request_authenticate(
    *, key_id: str, timestamp: str, signature: str, method: str, path: str, body: bytes
) -> tuple[object, ApiKey]:
    """The user and key of a correctly signed, fresh, first-seen request; else ``SignatureRefused``."""
    api_key = ApiKey.objects.select_related("user").filter(key_id=key_id).first()
    if api_key is None or not api_key.user.is_active:
        raise SignatureRefused("unknown_api_key", "Unknown API key.")
    if api_key.revoked_at is not None:
        raise SignatureRefused("revoked_api_key", "This API key has been revoked.")
    window_ms = settings.API_SIGNATURE_WINDOW_SECONDS * 1000
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 16:
        raise SignatureRefused("invalid_timestamp", "X-API-Timestamp must be unix time in milliseconds.")
    if abs(time.time() * 1000 - int(timestamp)) > window_ms:
        raise SignatureRefused(
            "stale_timestamp", f"X-API-Timestamp is more than {window_ms / 1000:g} s from the server's clock."
        )
    secret = secret_decrypt(api_key.secret_encrypted)
    expected = signature_of(secret=secret or "", timestamp=timestamp, method=method, path=path, body=body)
    # compare_digest refuses non-ASCII text, which a header may carry.
    given = signature.lower() if signature.isascii() else ""
    if secret is None or not hmac.compare_digest(expected, given):
        raise SignatureRefused("bad_signature", "The signature does not match the request.")
    # Only a correct signature is remembered, so no one can burn another client's signatures.
    seen = redis_.key("apikey", "seen", key_id, timestamp, expected)
    if not redis_.client().set(seen, 1, nx=True, ex=math.ceil(2 * window_ms / 1000) + 1):
        raise SignatureRefused("replayed_request", "This signed request was already received.")
    _touch(api_key)
    return api_key.user, api_key


def _touch(api_key: ApiKey) -> None:
    now = timezone.now()
    # Written at most once a minute: bots call many times a second.
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)


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
