"""FIX sessions (persisted sequence numbers per SenderCompID) and the journal of every message."""

from django.conf import settings
from django.db import models


class FixSession(models.Model):
    """One FIX session per SenderCompID (= username); its sequence numbers outlive connections."""

    sender_comp_id = models.CharField(max_length=150, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # The MsgSeqNum expected on the next message from the client, and the one the acceptor sends next.
    next_in_seq = models.PositiveIntegerField(default=1)
    next_out_seq = models.PositiveIntegerField(default=1)
    logged_on_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.sender_comp_id} in={self.next_in_seq} out={self.next_out_seq}"


class FixMessage(models.Model):
    """The journal: every message received or sent, as on the wire. Rows are never changed."""

    class Direction(models.TextChoices):
        IN = "in"
        OUT = "out"

    # NULL for a connection that never logged on (refused logon, garbage before a logon).
    session = models.ForeignKey(FixSession, null=True, blank=True, on_delete=models.PROTECT, related_name="messages")
    sender_comp_id = models.CharField(max_length=150, blank=True)
    direction = models.CharField(max_length=3, choices=Direction.choices)
    seq_num = models.PositiveIntegerField(null=True, blank=True)
    msg_type = models.CharField(max_length=8, blank=True)
    # The bytes as sent or received, decoded as latin-1 so any byte survives the round trip.
    raw = models.TextField()
    # Why a message was not processed normally ("refused", "garbled", "duplicate", "beyond gap").
    note = models.CharField(max_length=64, blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["session", "direction", "seq_num"])]

    def __str__(self) -> str:
        return f"{self.direction} {self.sender_comp_id} {self.seq_num} {self.msg_type}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("Journal rows are immutable.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Journal rows are immutable.")
