"""The FIX 4.4 acceptor: FIX sessions in front of the same order services as the REST API.

Who owns what (one process, one asyncio event loop, a small thread pool):
- The event loop thread owns every Connection and ``Acceptor.active`` (SenderCompID -> Connection,
  one live connection per session). Nothing else touches them.
- Per connection, three feeder tasks only put items on the connection's ``inbox`` (an
  asyncio.Queue): the reader (socket bytes -> parsed messages), the listener (the user's private
  channel-layer group -> shard events), the ticker (once a second, for heartbeats). The
  connection's own task, ``Connection.run``, takes the items one at a time and is the only code
  that reads or changes the session's state (sequence numbers, outstanding cancels) or writes to
  the socket. Handling one item at a time is what orders the reports: the New of an order is
  written before any shard event about that order is looked at.
- Database and Redis calls (order_place, order_cancel, the journal, presence) run on ``_executor``
  threads, each with its own Django connection; the connection's task awaits each call, so one
  session's writes happen in the order of its messages while other sessions go on.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import simplefix
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections

from accounts.services import user_for_token
from exchange_site.errors import RuleViolation
from marketdata import presence
from marketdata.groups import user_group
from orders.serializers import order_data
from orders.services import order_cancel, order_place

from . import protocol as fix
from . import reports
from .selectors import order_for_cancel
from .services import message_journal, session_for_logon

log = logging.getLogger(__name__)

LOGON_TIMEOUT = 10  # seconds a new connection has to log on
BRPOP_TIMEOUT = 2  # seconds; see Connection._stream_open
MAX_BUFFER = 64 * 1024  # bytes of an unfinished message before the connection is dropped
_executor = ThreadPoolExecutor(max_workers=settings.FIX_DB_THREADS, thread_name_prefix="fix-db")


async def db(fn, /, **kwargs):
    """Run a Django call on a pool thread; stale connections are dropped as Django does per request."""

    def run():
        close_old_connections()
        try:
            return fn(**kwargs)
        finally:
            close_old_connections()

    return await asyncio.get_running_loop().run_in_executor(_executor, run)


def _accepts_expire_at() -> bool:
    return "expire_at" in inspect.signature(order_place).parameters


def _utc_timestamp(value: str | None) -> datetime | None:
    for fmt in ("%Y%m%d-%H:%M:%S.%f", "%Y%m%d-%H:%M:%S"):
        try:
            return datetime.strptime(value or "", fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


class Closing(Exception):
    """The connection ends after what was just sent."""


class Connection:
    def __init__(self, acceptor: Acceptor, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.acceptor = acceptor
        self.reader = reader
        self.writer = writer
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.session_id: int | None = None
        self.user = None
        self.sender = ""
        self.heartbeat = 30
        self.next_in = self.next_out = 1
        self.gap_requested = False
        self.connected_at = self.last_in = self.last_out = time.monotonic()
        self.test_request_at: float | None = None
        self.channel: str | None = None
        self.streaming = False
        self.cancel_cl_ord_ids: dict[int, str] = {}
        self.tasks: list[asyncio.Task] = []

    # --- the connection's task --------------------------------------------------------------

    async def run(self) -> None:
        self.tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._tick())]
        try:
            while True:
                kind, item = await self.inbox.get()
                if kind == "message":
                    await self._on_message(item)
                elif kind == "event":
                    await self._on_event(item)
                elif kind == "tick":
                    await self._on_tick()
                elif kind == "shutdown":
                    if self.session_id is not None:
                        await self.send(fix.LOGOUT, [(58, item)])
                    return
                else:  # "eof"
                    return
        except Closing:
            pass
        except (ConnectionError, OSError):
            log.info("FIX %s: connection lost", self.sender or "(not logged on)")
        except Exception:
            log.exception("FIX %s: closing after an unexpected error", self.sender or "(not logged on)")
        finally:
            await self._close()

    async def _close(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.acceptor.active.get(self.sender) is self:
            del self.acceptor.active[self.sender]
        try:
            if self.channel is not None:
                await get_channel_layer().group_discard(user_group(self.user.pk), self.channel)
            if self.streaming:
                await db(presence.stream_closed, user_id=self.user.pk)
        except Exception:
            log.exception("FIX %s: leaving the user's event group failed", self.sender)
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass
        log.info("FIX %s: disconnected", self.sender or "(not logged on)")

    # --- feeders ----------------------------------------------------------------------------

    async def _read(self) -> None:
        parser = simplefix.FixParser()
        try:
            while data := await self.reader.read(65536):
                parser.append_buffer(data)
                while (message := parser.get_message()) is not None:
                    await self.inbox.put(("message", message))
                if len(parser.get_buffer()) > MAX_BUFFER:
                    break
        except (ConnectionError, OSError, simplefix.errors.ParsingError):
            pass
        await self.inbox.put(("eof", None))

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(1)
            await self.inbox.put(("tick", None))

    async def _listen(self) -> None:
        layer = get_channel_layer()
        try:
            while True:
                await self.inbox.put(("event", await layer.receive(self.channel)))
        except asyncio.CancelledError:
            raise
        except Exception:
            # Without events the session would stay silent about fills: end it so the client knows.
            log.exception("FIX %s: the channel layer failed", self.sender)
            await self.inbox.put(("shutdown", "Execution reports are unavailable; log on again later."))

    # --- sending ----------------------------------------------------------------------------

    async def send(self, msg_type: str, fields: fix.Fields, *, seq_num: int | None = None, note: str = "") -> None:
        """Journal, then write. ``seq_num`` given = a gap fill reusing an old number (PossDup)."""
        poss_dup = seq_num is not None
        if seq_num is None:
            seq_num = self.next_out
            self.next_out += 1
        target = self.sender or "UNKNOWN"
        raw = fix.encode(
            msg_type, fields, sender=fix.EXCHANGE_COMP_ID, target=target, seq_num=seq_num, poss_dup=poss_dup
        )
        await db(
            message_journal,
            session_id=self.session_id,
            sender_comp_id=target,
            direction="out",
            seq_num=seq_num,
            msg_type=msg_type,
            raw=fix.wire_text(raw),
            note=note,
            next_out_seq=self.next_out if self.session_id is not None and not poss_dup else None,
        )
        log.debug("FIX %s out: %s", target, raw.replace(b"\x01", b"|"))
        self.writer.write(raw)
        await self.writer.drain()
        self.last_out = time.monotonic()

    async def _journal_in(self, message, *, note: str = "", next_in_seq: int | None = None) -> None:
        await db(
            message_journal,
            session_id=self.session_id,
            sender_comp_id=fix.get(message, 49) or "",
            direction="in",
            seq_num=_int(fix.get(message, 34)),
            msg_type=fix.get(message, 35) or "",
            raw=fix.wire_text(message.encode(raw=True)),
            note=note,
            next_in_seq=next_in_seq,
        )

    async def _logout(self, text: str) -> None:
        await self.send(fix.LOGOUT, [(58, text)])
        raise Closing

    # --- session layer ----------------------------------------------------------------------

    async def _on_message(self, message) -> None:
        log.debug("FIX %s in: %s", self.sender, message)
        self.last_in = time.monotonic()
        self.test_request_at = None
        msg_type = fix.get(message, 35) or ""
        seq = _int(fix.get(message, 34))
        if not fix.checksum_ok(message):
            return await self._journal_in(message, note="garbled: ignored")  # FIX: as if never received
        if self.session_id is None:
            if msg_type != fix.LOGON:
                await self._journal_in(message, note="before logon")
                raise Closing
            return await self._logon(message, seq)
        if fix.get(message, 49) != self.sender or fix.get(message, 56) != fix.EXCHANGE_COMP_ID:
            await self._journal_in(message, note="wrong CompID")
            await self._logout("SenderCompID and TargetCompID must stay those of the logon.")
        if seq is None:
            await self._journal_in(message, note="no MsgSeqNum")
            await self._logout("MsgSeqNum (34) is required.")
        if msg_type == fix.SEQUENCE_RESET and fix.get(message, 123) != "Y":
            return await self._sequence_reset(message)
        if seq < self.next_in:
            if fix.get(message, 43) == "Y":
                return await self._journal_in(message, note="duplicate: ignored")
            await self._journal_in(message, note="MsgSeqNum too low")
            await self._logout(f"MsgSeqNum too low, expecting {self.next_in} but received {seq}.")
        if seq > self.next_in:
            return await self._beyond_gap(message, msg_type)
        self.gap_requested = False
        if msg_type == fix.SEQUENCE_RESET:  # gap fill of the client's own messages
            self.next_in = max(_int(fix.get(message, 36)) or 0, seq + 1)
            return await self._journal_in(message, next_in_seq=self.next_in)
        self.next_in = seq + 1
        await self._journal_in(message, next_in_seq=self.next_in)
        await self._dispatch(message, msg_type, seq)

    async def _beyond_gap(self, message, msg_type: str) -> None:
        """Messages were lost: ask for them again from the first missing one (EndSeqNo 0 = all).

        This message is not processed now; it comes again with the resend, in sequence. A
        ResendRequest or Logout is answered at once, as FIX asks.
        """
        await self._journal_in(message, note="beyond gap: awaiting resend")
        if msg_type == fix.RESEND_REQUEST:
            await self._answer_resend(message)
        if msg_type == fix.LOGOUT:
            await self._logout("Logout confirmed.")
        if not self.gap_requested:
            self.gap_requested = True
            await self.send(fix.RESEND_REQUEST, [(7, str(self.next_in)), (16, "0")])

    async def _sequence_reset(self, message) -> None:
        """Reset mode (123 absent or N): the client's next MsgSeqNum is NewSeqNo, whatever this one's."""
        new = _int(fix.get(message, 36))
        if new is None or new < self.next_in:
            await self._journal_in(message, note="bad SequenceReset")
            return await self._reject(message, "NewSeqNo (36) may not lower the expected MsgSeqNum.", reason="5")
        self.next_in = new
        self.gap_requested = False
        await self._journal_in(message, next_in_seq=new)

    async def _answer_resend(self, message) -> None:
        """Answer a ResendRequest with one SequenceReset-GapFill over the whole range.

        Nothing is resent, application messages included: reports a client missed are final
        only in the database; it asks the REST API (GET /orders) for the orders' state.
        """
        begin = max(_int(fix.get(message, 7)) or 1, 1)
        end = _int(fix.get(message, 16)) or 0  # 0: up to the last message sent
        if begin >= self.next_out:
            return await self._reject(message, f"BeginSeqNo (7) {begin} was never sent; next is {self.next_out}.")
        new_seq = self.next_out if end == 0 or end >= self.next_out - 1 else max(end, begin) + 1
        await self.send(fix.SEQUENCE_RESET, [(123, "Y"), (36, str(new_seq))], seq_num=begin, note="gap fill")

    async def _reject(self, message, text: str, *, reason: str = "99", tag: int | None = None) -> None:
        fields = [(45, fix.get(message, 34) or "0"), (372, fix.get(message, 35) or "")]
        if tag is not None:
            fields.append((371, str(tag)))
        await self.send(fix.REJECT, [*fields, (373, reason), (58, text)])

    async def _dispatch(self, message, msg_type: str, seq: int) -> None:
        if msg_type == fix.TEST_REQUEST:
            await self.send(fix.HEARTBEAT, [(112, fix.get(message, 112) or "")])
        elif msg_type == fix.RESEND_REQUEST:
            await self._answer_resend(message)
        elif msg_type == fix.LOGOUT:
            await self._logout("Logout confirmed.")
        elif msg_type == fix.LOGON:
            await self._reject(message, "Already logged on.")
        elif msg_type == fix.NEW_ORDER_SINGLE:
            await self._new_order(message, seq)
        elif msg_type == fix.ORDER_CANCEL_REQUEST:
            await self._cancel(message)
        elif msg_type not in (fix.HEARTBEAT, fix.REJECT):
            await self._reject(message, f"MsgType {msg_type!r} is not supported.", reason="11")

    async def _on_tick(self) -> None:
        now = time.monotonic()
        if self.session_id is None:
            if now - self.connected_at > LOGON_TIMEOUT:
                raise Closing
            return
        if self.test_request_at is not None and now - self.test_request_at > self.heartbeat:
            await self._logout("No answer to TestRequest: heartbeat timeout.")
        if self.test_request_at is None and now - self.last_in > self.heartbeat * 1.2 + 1:
            self.test_request_at = now
            await self.send(fix.TEST_REQUEST, [(112, f"TEST-{int(time.time())}")])
        elif now - self.last_out >= self.heartbeat:
            await self.send(fix.HEARTBEAT, [])

    # --- logon ------------------------------------------------------------------------------

    async def _logon(self, message, seq: int | None) -> None:
        sender = fix.get(message, 49) or ""
        heartbeat = _int(fix.get(message, 108))
        refusal = None
        user = None
        if message.begin_string != fix.BEGIN_STRING.encode():
            refusal = f"BeginString (8) must be {fix.BEGIN_STRING}."
        elif fix.get(message, 56) != fix.EXCHANGE_COMP_ID:
            refusal = f"TargetCompID (56) must be {fix.EXCHANGE_COMP_ID}."
        elif not heartbeat or heartbeat > 3600:
            refusal = "HeartBtInt (108) must be a whole number of seconds, 1 to 3600."
        elif seq is None:
            refusal = "MsgSeqNum (34) is required."
        else:
            user = await db(user_for_token, key=fix.get(message, 554) or "")
            if user is None or user.username != sender or fix.get(message, 553) != sender:
                refusal = "Logon refused: SenderCompID and Username (553) are your username, Password (554) an API token of yours."
            elif sender in self.acceptor.active:
                refusal = f"{sender} is already logged on in another connection."
        if refusal is not None:
            self.sender = sender
            await self._journal_in(message, note="logon refused")
            await self.send(fix.LOGOUT, [(58, refusal)], note="logon refused")
            raise Closing
        self.acceptor.active[sender] = self
        self.sender, self.user, self.heartbeat = sender, user, heartbeat
        reset = fix.get(message, 141) == "Y"
        session = await db(session_for_logon, sender_comp_id=sender, user=user, reset=reset)
        self.session_id, self.next_in, self.next_out = session.pk, session.next_in_seq, session.next_out_seq
        if seq < self.next_in and fix.get(message, 43) != "Y":
            await self._journal_in(message, note="MsgSeqNum too low")
            await self._logout(f"MsgSeqNum too low, expecting {self.next_in} but received {seq}.")
        gap = seq > self.next_in
        if seq == self.next_in:
            self.next_in = seq + 1
        await self._journal_in(message, next_in_seq=self.next_in, note="beyond gap: awaiting resend" if gap else "")
        await self._stream_open()
        await self.send(fix.LOGON, [(98, "0"), (108, str(heartbeat)), *([(141, "Y")] if reset else [])])
        log.info("FIX %s: logged on (in %s, out %s)", sender, self.next_in, self.next_out)
        if gap:
            self.gap_requested = True
            await self.send(fix.RESEND_REQUEST, [(7, str(self.next_in)), (16, "0")])

    async def _stream_open(self) -> None:
        """Listen to the user's private events, counted open first so the shard renders them."""
        await db(presence.stream_opened, user_id=self.user.pk)
        self.streaming = True
        layer = get_channel_layer()
        # redis-py's default socket timeout (5 s) equals channels_redis's blocking pop (5 s): an idle
        # wait would end in a TimeoutError. A shorter pop keeps every wait inside the socket timeout.
        layer.brpop_timeout = BRPOP_TIMEOUT
        self.channel = await layer.new_channel("fix.")
        await layer.group_add(user_group(self.user.pk), self.channel)
        self.tasks.append(asyncio.create_task(self._listen()))

    # --- application layer ------------------------------------------------------------------

    async def _new_order(self, message, seq: int) -> None:
        given = {
            "cl_ord_id": fix.get(message, 11),
            "symbol": fix.get(message, 55),
            "side": fix.get(message, 54),
            "ord_type": fix.get(message, 40),
            "quantity": fix.get(message, 38),
            "price": fix.get(message, 44),
        }
        if not given["cl_ord_id"]:
            return await self._reject(message, "ClOrdID (11) is required.", reason="1", tag=11)
        arguments, problem = self._order_arguments(message, given)
        if problem is not None:
            return await self._door_reject(given, problem, reason="11")

        def place():
            order, created = order_place(user=self.user, client_order_id=given["cl_ord_id"], **arguments)
            return order_data(order), created

        try:
            order, created = await db(place)
        except RuleViolation as exc:
            return await self._door_reject(given, exc.message, reason=reports.ORD_REJ_REASON.get(exc.code, "99"))
        if created:
            await self.send(fix.EXECUTION_REPORT, reports.new_report(order))
        else:
            text = "ClOrdID already used: this is that order's status; nothing was placed."
            exec_id = f"{order['id']}-status-{uuid.uuid4().hex[:12]}"
            await self.send(fix.EXECUTION_REPORT, reports.status_report(order, exec_id=exec_id, text=text))

    def _order_arguments(self, message, given: dict) -> tuple[dict, str | None]:
        """order_place's arguments from the message's tags, or the reason they cannot be."""
        side = reports.SIDE_FROM_FIX.get(given["side"] or "")
        if side is None:
            return {}, "Side (54) must be 1 (buy) or 2 (sell)."
        order_type = reports.ORD_TYPE_FROM_FIX.get(given["ord_type"] or "")
        if order_type is None:
            return {}, "OrdType (40) must be 1 (market) or 2 (limit)."
        time_in_force = reports.TIME_IN_FORCE_FROM_FIX.get(fix.get(message, 59) or "1")
        if time_in_force is None:
            return {}, "TimeInForce (59) must be 1 (GTC), 3 (IOC), 4 (FOK) or 6 (GTD)."
        arguments = {
            "symbol": given["symbol"] or "",
            "side": side,
            "type": order_type,
            "quantity": given["quantity"],
            "price": given["price"],
            "quote_quantity": fix.get(message, 152),
            "time_in_force": time_in_force,
            "post_only": "6" in (fix.get(message, 18) or "").split(),
        }
        if time_in_force == "GTD":
            if not _accepts_expire_at():
                return {}, "TimeInForce 6 (GTD) is not accepted yet; use 1 (GTC), 3 (IOC) or 4 (FOK)."
            expire_at = _utc_timestamp(fix.get(message, 126))
            if expire_at is None:
                return {}, "TimeInForce 6 (GTD) needs ExpireTime (126) as YYYYMMDD-HH:MM:SS[.sss] UTC."
            arguments["expire_at"] = expire_at
        return arguments, None

    async def _door_reject(self, given: dict, text: str, *, reason: str) -> None:
        exec_id = f"reject-{uuid.uuid4().hex[:16]}"
        await self.send(fix.EXECUTION_REPORT, reports.door_reject(given, exec_id=exec_id, text=text, reason=reason))

    async def _cancel(self, message) -> None:
        cl_ord_id, orig, order_id = fix.get(message, 11), fix.get(message, 41), fix.get(message, 37)
        if not cl_ord_id:
            return await self._reject(message, "ClOrdID (11) is required.", reason="1", tag=11)

        def cancel():
            order = order_for_cancel(user=self.user, order_id=order_id, client_order_id=orig)
            if order is None:
                return None, None
            try:
                order_cancel(user=self.user, order_id=order.pk)
            except RuleViolation as exc:
                return order_data(order), exc
            return order_data(order), None

        order, problem = await db(cancel)
        if order is None or problem is not None:
            return await self.send(
                fix.ORDER_CANCEL_REJECT,
                [
                    (37, str(order["id"]) if order else order_id or "NONE"),
                    (11, cl_ord_id),
                    (41, reports.cl_ord_id_of(order) if order else orig or "NONE"),
                    (39, reports.ORD_STATUS[order["status"]] if order else "8"),
                    (434, "1"),
                    (102, "0" if order else "1"),  # too late to cancel / unknown order
                    (58, problem.message if problem else "Unknown order: no such OrderID (37) or OrigClOrdID (41)."),
                ],
            )
        self.cancel_cl_ord_ids[order["id"]] = cl_ord_id
        # Pending Cancel: the request is queued behind the order; the engine's Canceled follows.
        report = reports.execution_report(
            order,
            exec_id=f"{order['id']}-pending-cancel-{uuid.uuid4().hex[:8]}",
            exec_type="6",
            ord_status="6",
            cum_qty=order["filled_quantity"],
            leaves_qty=order["remaining_quantity"],
            avg_px=order["average_price"] or "0",
            cl_ord_id=cl_ord_id,
            orig_cl_ord_id=reports.cl_ord_id_of(order),
        )
        await self.send(fix.EXECUTION_REPORT, report)

    async def _on_event(self, event: dict) -> None:
        if event.get("type") != "user.events" or not event.get("orders"):
            return
        fills = defaultdict(list)
        for fill in event.get("fills") or ():
            fills[fill["order_id"]].append(fill)
        for order in event["orders"]:
            cancel_cl_ord_id = self.cancel_cl_ord_ids.get(order["id"])
            if order["status"] in reports.FINAL_EXEC_TYPE or order["status"] == "filled":
                self.cancel_cl_ord_ids.pop(order["id"], None)
            for report in reports.reports_for_event(order, fills[order["id"]], cancel_cl_ord_id=cancel_cl_ord_id):
                await self.send(fix.EXECUTION_REPORT, report)


class Acceptor:
    def __init__(self, *, host: str, port: int):
        self.host, self.port = host, port
        self.active: dict[str, Connection] = {}
        self.connections: set[asyncio.Task] = set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self.connections.add(task)
        try:
            await Connection(self, reader, writer).run()
        finally:
            self.connections.discard(task)

    async def serve(self, stop: asyncio.Event) -> None:
        server = await asyncio.start_server(self._accept, self.host, self.port)
        log.info("FIX acceptor listening on %s:%s", self.host, self.port)
        async with server:
            await stop.wait()
            server.close()
            for connection in list(self.active.values()):
                await connection.inbox.put(("shutdown", "The acceptor is shutting down."))
            if self.connections:
                await asyncio.wait(list(self.connections), timeout=5)
