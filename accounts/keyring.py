"""Encryption of API key secrets at rest, with a key derived from SECRET_KEY.

Secrets are encrypted, not hashed, because verifying an HMAC signature needs the secret itself.
The encryption key is derived (HKDF-SHA256) from SECRET_KEY, which is configuration, not data:
a database dump or backup alone reveals no secret. SECRET_KEY_FALLBACKS still decrypt, so the
key can be rotated without breaking the bots' existing key pairs.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


def _fernet_for(secret_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"exchange api key secrets").derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


@lru_cache(maxsize=4)
def _keyring(secret_key: str, fallbacks: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([_fernet_for(secret_key), *map(_fernet_for, fallbacks)])


def keyring() -> MultiFernet:
    return _keyring(settings.SECRET_KEY, tuple(getattr(settings, "SECRET_KEY_FALLBACKS", ())))


def secret_encrypt(secret: str) -> str:
    return keyring().encrypt(secret.encode()).decode()


def secret_decrypt(token: str) -> str | None:
    """The secret, or None when no current or fallback SECRET_KEY decrypts it."""
    try:
        return keyring().decrypt(token.encode()).decode()
    except InvalidToken:
        return None
