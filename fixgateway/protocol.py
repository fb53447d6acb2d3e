"""FIX 4.4 framing on top of simplefix: building outbound messages, reading fields, checking checksums."""

from __future__ import annotations

import simplefix

BEGIN_STRING = "FIX.4.4"
EXCHANGE_COMP_ID = "EXCHANGE"

# MsgType (35)
HEARTBEAT = "0"
TEST_REQUEST = "1"
RESEND_REQUEST = "2"
REJECT = "3"
SEQUENCE_RESET = "4"
LOGOUT = "5"
EXECUTION_REPORT = "8"
ORDER_CANCEL_REJECT = "9"
LOGON = "A"
NEW_ORDER_SINGLE = "D"
ORDER_CANCEL_REQUEST = "F"
ADMIN_TYPES = {HEARTBEAT, TEST_REQUEST, RESEND_REQUEST, REJECT, SEQUENCE_RESET, LOGOUT, LOGON}

Fields = list[tuple[int, str]]


def get(message: simplefix.FixMessage, tag: int) -> str | None:
    """The text of a tag's first occurrence, or None (FIX is ASCII; other bytes are kept as latin-1)."""
    value = message.get(tag)
    return None if value is None else value.decode("latin-1")


def wire_text(raw: bytes) -> str:
    return raw.decode("latin-1")


def checksum_ok(message: simplefix.FixMessage) -> bool:
    """The CheckSum (10) matches the bytes before it, and BodyLength (9) their count after it."""
    raw = message.encode(raw=True)
    cut = raw.rfind(b"10=")
    if cut < 0 or get(message, 10) is None:
        return False
    body_start = raw.find(b"\x0135=") + 1
    try:
        length_ok = int(get(message, 9) or -1) == cut - body_start
        return length_ok and int(get(message, 10)) == sum(raw[:cut]) % 256
    except ValueError:
        return False


def encode(
    msg_type: str,
    fields: Fields,
    *,
    sender: str,
    target: str,
    seq_num: int,
    poss_dup: bool = False,
) -> bytes:
    """A complete outbound message; simplefix computes BodyLength and CheckSum."""
    message = simplefix.FixMessage()
    message.append_pair(8, BEGIN_STRING, header=True)
    message.append_pair(35, msg_type, header=True)
    message.append_pair(49, sender, header=True)
    message.append_pair(56, target, header=True)
    message.append_pair(34, seq_num, header=True)
    if poss_dup:
        message.append_pair(43, "Y", header=True)
    message.append_utc_timestamp(52, precision=3, header=True)
    if poss_dup:
        message.append_utc_timestamp(122, precision=3, header=True)
    for tag, value in fields:
        message.append_pair(tag, value)
    return message.encode()
