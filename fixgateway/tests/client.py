"""A blocking FIX 4.4 initiator on simplefix, as a client's program would be, for the end-to-end tests."""

from __future__ import annotations

import socket
import time

import simplefix


class FixClient:
    def __init__(self, port: int, *, sender: str, token: str, next_out: int = 1):
        self.sender, self.token = sender, token
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.parser = simplefix.FixParser()
        self.next_out = next_out
        self.sent: list[tuple[int, str]] = []  # (MsgSeqNum, MsgType) of every message written
        self.received: list[simplefix.FixMessage] = []  # everything read, in order
        self.pending: list[simplefix.FixMessage] = []  # read but not yet taken by expect()

    def send(self, msg_type: str, fields=(), *, seq: int | None = None, poss_dup: bool = False) -> int:
        if seq is None:
            seq, self.next_out = self.next_out, self.next_out + 1
        message = simplefix.FixMessage()
        message.append_pair(8, "FIX.4.4", header=True)
        message.append_pair(35, msg_type, header=True)
        message.append_pair(49, self.sender, header=True)
        message.append_pair(56, "EXCHANGE", header=True)
        message.append_pair(34, seq, header=True)
        if poss_dup:
            message.append_pair(43, "Y", header=True)
        message.append_utc_timestamp(52, header=True)
        for tag, value in fields:
            message.append_pair(tag, value)
        self.sock.sendall(message.encode())
        self.sent.append((seq, msg_type))
        return seq

    def logon(self, *, seq: int | None = None, token: str | None = None, heartbeat: int = 30, reset: bool = False):
        fields = [(98, "0"), (108, heartbeat), (553, self.sender), (554, token or self.token)]
        if reset:
            fields.append((141, "Y"))
        self.send("A", fields, seq=seq)
        return self.expect("A", "5")

    def _read(self, deadline: float) -> bool:
        while (message := self.parser.get_message()) is None:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return False
            if not data:
                raise EOFError("the acceptor closed the connection")
            self.parser.append_buffer(data)
        self.received.append(message)
        self.pending.append(message)
        return True

    def expect(self, *msg_types: str, timeout: float = 20, **tags) -> simplefix.FixMessage:
        """The first unread message of one of ``msg_types`` whose tags (t11="A1") match, waiting for it."""
        wanted = {int(name[1:]): str(value) for name, value in tags.items()}
        deadline = time.monotonic() + timeout
        while True:
            for message in self.pending:
                if tag(message, 35) in msg_types and all(tag(message, t) == v for t, v in wanted.items()):
                    self.pending.remove(message)
                    return message
            if time.monotonic() > deadline or not self._read(deadline):
                seen = [str(m) for m in self.pending]
                raise TimeoutError(f"no {msg_types} with {wanted}; unread: {seen}")

    def closed(self, timeout: float = 10) -> bool:
        """True once the acceptor has closed the connection (after reading whatever it sent first)."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self._read(deadline)
        except EOFError:
            return True
        return False

    def close(self) -> None:
        self.sock.close()


def tag(message: simplefix.FixMessage, number: int) -> str | None:
    value = message.get(number)
    return None if value is None else value.decode()
