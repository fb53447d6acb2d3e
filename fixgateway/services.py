"""Writes of the FIX gateway: sessions and their sequence numbers, and the message journal."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from .models import FixMessage, FixSession


def session_for_logon(*, sender_comp_id: str, user, reset: bool = False) -> FixSession:
    """The user's session (created on the first logon); ``reset`` (ResetSeqNumFlag) starts both sides at 1."""
    with transaction.atomic(durable=True):
        session, _ = FixSession.objects.select_for_update().get_or_create(
            sender_comp_id=sender_comp_id, defaults={"user": user}
        )
        session.logged_on_at = timezone.now()
        if reset:
            session.next_in_seq = session.next_out_seq = 1
        session.save()
    return session


def message_journal(
    *,
    session_id: int | None,
    sender_comp_id: str,
    direction: str,
    seq_num: int | None,
    msg_type: str,
    raw: str,
    note: str = "",
    next_in_seq: int | None = None,
    next_out_seq: int | None = None,
) -> None:
    """Journal one message and, in the same transaction, the session's sequence numbers it moved.

    Outbound messages are journaled before they are written to the socket, so a sequence number
    is never used twice, even if the process dies between the two.
    """
    with transaction.atomic(durable=True):
        FixMessage.objects.create(
            session_id=session_id,
            sender_comp_id=sender_comp_id[:150],
            direction=direction,
            seq_num=seq_num,
            msg_type=msg_type[:8],
            raw=raw,
            note=note[:64],
        )
        changes = {}
        if next_in_seq is not None:
            changes["next_in_seq"] = next_in_seq
        if next_out_seq is not None:
            changes["next_out_seq"] = next_out_seq
        if session_id is not None and changes:
            FixSession.objects.filter(pk=session_id).update(**changes)
