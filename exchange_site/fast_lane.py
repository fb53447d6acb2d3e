"""The API's fast lane: the requests bots send most, answered without Django's request cycle.

Placing orders (single and batch, with an API token) and public depth make most of a bot's traffic.
Through Django each paid for the whole middleware stack (sessions, CSRF, OTP, axes, messages),
DRF's dispatch and two thread hops; here a request is read on the event loop, its work runs once
on an order-door thread (orders/db_threads.py) and the answer goes straight back. The work itself
is the same code the Django views call: the same services, the same rate-limit count
(``throttling.window_allows``), the same JSON parser and error format.

A handler answers only the plain case and returns ``None`` for anything else: no token, a
signature or a session instead, a bad or revoked token, a body that is not JSON, an odd query,
the rate limit reached, a disallowed host, plain http where https is required. The request then
goes on to Django with its body, and gets exactly the answer it always got. A handler that fails
because MariaDB or Redis is down gets the 503 Django's views give; any other failure a 500.

Threads: ``FastLane.__call__`` and the handlers' coroutines run on the server's event loop; each
handler's ``work`` function runs on an order-door thread and shares nothing but the per-process
memos (exchange_site/local_cache.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from rest_framework.utils.encoders import JSONEncoder

from .errors import RETRY_AFTER_SECONDS, error_body, service_down, unavailable_body

log = logging.getLogger("exchange_site.fast_lane")

_encoder = JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


@dataclass(slots=True)
class LeanRequest:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]  # lower-cased names; a repeated header keeps its last value
    body: bytes
    client: str | None
    match: re.Match

    @property
    def META(self) -> dict:  # noqa: N802 - what DRF's get_ident reads of a request
        return {"REMOTE_ADDR": self.client}

    def token(self) -> str | None:
        """The key of an ``Authorization: Token <key>`` header, when that is the request's only credential."""
        if "x-api-key" in self.headers or "x-api-signature" in self.headers:
            return None
        scheme, _, key = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "token" or not key or " " in key.strip():
            return None
        return key.strip()

    def json_content(self) -> bool:
        return self.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"


@dataclass(slots=True)
class LeanResponse:
    status: int
    data: object
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def rendered(self) -> bytes:
        return _encoder.encode(self.data).encode()


def json_response(status: int, data) -> LeanResponse:
    return LeanResponse(status=status, data=data)


def _unavailable(exc: BaseException) -> LeanResponse | None:
    """MariaDB or Redis down: the 503 Django's views give (errors.py); None for any other failure."""
    service = service_down(exc)
    if service is None:
        return None
    log.warning("fast lane: %s is down (%s: %s)", service, type(exc).__name__, exc)
    return LeanResponse(
        status=503, data=unavailable_body(service), headers=[(b"retry-after", str(RETRY_AFTER_SECONDS).encode())]
    )


Handler = Callable[[LeanRequest], Awaitable[LeanResponse | None]]


@dataclass(slots=True)
class Route:
    method: str
    pattern: re.Pattern
    handler: Handler
    allow: bytes  # the Allow header DRF sends for the view


def _security_headers() -> list[tuple[bytes, bytes]]:
    """What SecurityMiddleware, XFrameOptionsMiddleware and DRF add to an API answer."""
    headers = [(b"content-type", b"application/json")]
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append((b"x-content-type-options", b"nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        headers.append((b"referrer-policy", settings.SECURE_REFERRER_POLICY.encode()))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append((b"cross-origin-opener-policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY.encode()))
    headers.append((b"x-frame-options", settings.X_FRAME_OPTIONS.encode()))
    return headers


class FastLane:
    """ASGI: answers the routes' plain requests itself and passes everything else to ``app`` (Django)."""

    def __init__(self, app, routes: list[Route]):
        self.app = app
        self.routes = routes
        self.enabled = settings.API_FAST_LANE
        self.base_headers = _security_headers()
        hosts = settings.ALLOWED_HOSTS
        if settings.DEBUG and not hosts:
            hosts = [".localhost", "127.0.0.1", "[::1]"]
        self.allowed_hosts = hosts

    async def __call__(self, scope, receive, send):
        route, match = self._route(scope) if self.enabled and scope["type"] == "http" else (None, None)
        if route is None or not self._plain(scope):
            return await self.app(scope, receive, send)
        body, complete = await _body(receive)
        if not complete:
            return await self.app(scope, _replay(body, receive, complete=False), send)
        request = _request(scope, body, match)
        try:
            response = await route.handler(request)
        except Exception as exc:
            # Not passed on to Django: the work may have been done (an order placed) before it failed.
            response = _unavailable(exc)
            if response is None:
                log.exception("fast lane %s %s failed", request.method, request.path)
                response = json_response(500, error_body("server_error", "The server failed to answer this request."))
        if response is None:
            return await self.app(scope, _replay(body, receive, complete=True), send)
        await self._send(send, response, route, scope)

    def _route(self, scope):
        method, path = scope["method"], scope["path"]
        for route in self.routes:
            if route.method == method:
                match = route.pattern.fullmatch(path)
                if match is not None:
                    return route, match
        return None, None

    def _plain(self, scope) -> bool:
        """A request Django would serve as is: an allowed Host, and https if https is required."""
        host = _header(scope, b"host")
        if host is None:
            return False
        domain, _ = split_domain_port(host)
        if not domain or not validate_host(domain, self.allowed_hosts):
            return False
        return not settings.SECURE_SSL_REDIRECT or _secure(scope)

    async def _send(self, send, response: LeanResponse, route: Route, scope) -> None:
        body = response.rendered()
        headers = [*self.base_headers, (b"allow", route.allow), *response.headers]
        if settings.SECURE_HSTS_SECONDS and _secure(scope):
            headers.append((b"strict-transport-security", _hsts()))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _header(scope, name: bytes) -> str | None:
    return next((value.decode("latin-1") for key, value in scope["headers"] if key == name), None)


def _secure(scope) -> bool:
    """What Django's ``request.is_secure()`` says: https, or a proxy's header saying so when trusted."""
    if settings.SECURE_PROXY_SSL_HEADER:
        meta_name, expected = settings.SECURE_PROXY_SSL_HEADER
        value = _header(scope, meta_name.removeprefix("HTTP_").lower().replace("_", "-").encode())
        if value is not None:
            return value.split(",")[0].strip() == expected
    return scope.get("scheme") == "https"


def _hsts() -> bytes:
    """SecurityMiddleware's Strict-Transport-Security value."""
    value = f"max-age={settings.SECURE_HSTS_SECONDS}"
    if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
        value += "; includeSubDomains"
    if settings.SECURE_HSTS_PRELOAD:
        value += "; preload"
    return value.encode()


async def _body(receive) -> tuple[bytes, bool]:
    """The request body, up to the API's size limit; (what was read, whether that is all of it)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > limit:
            return b"".join(chunks), False  # Django answers 413


def _replay(body: bytes, receive, *, complete: bool):
    """A ``receive`` that gives Django the body already read, then what is still to come."""
    pending = True

    async def replayed():
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()

    return replayed


def _request(scope, body: bytes, match: re.Match) -> LeanRequest:
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
    query = scope.get("query_string", b"").decode("latin-1")
    client = scope.get("client")
    return LeanRequest(
        method=scope["method"],
        path=scope["path"],
        params=dict(parse_qsl(query, keep_blank_values=True)) if query else {},
        headers=headers,
        body=body,
        client=client[0] if client else None,
        match=match,
    )
