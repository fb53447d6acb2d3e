import hashlib

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """An API key. Only its SHA-256 is stored: the key itself is shown once, when it is created."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=64, blank=True)
    prefix = models.CharField(max_length=8, help_text="First characters of the key, to tell keys apart.")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @staticmethod
    def digest_of(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()


class ApiKey(models.Model):
    """A key pair for signed requests: the key id is public, the secret signs each request.

    Checking an HMAC needs the secret itself, so it cannot be stored as a one-way hash as tokens
    are: it is stored encrypted (``accounts.keyring``) with a key derived from SECRET_KEY, which
    lives outside the database, so a copy of the database alone does not give the secrets away.
    """

    class Scope(models.TextChoices):
        READ = "read", "Read"
        TRADE = "trade", "Trade"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=64, blank=True)
    key_id = models.CharField(max_length=32, unique=True)
    secret_encrypted = models.TextField()
    scopes = models.CharField(max_length=32, help_text="Comma-separated: read, trade.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.key_id} ({self.user})"

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(filter(None, self.scopes.split(",")))

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
