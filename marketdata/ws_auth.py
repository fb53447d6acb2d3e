"""Who a websocket is, and whether its Origin may open it.

Bots authenticate with ``?token=<key>``; browsers with their Django session. A browser always
sends an Origin header, so a connection with one must come from an allowed host (a foreign page
must not ride a signed-in user's session cookie). A connection without an Origin is not a browser:
it is accepted only with a valid token, and its session cookie, if any, is ignored.
"""

from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import AllowedHostsOriginValidator, WebsocketDenier
from django.contrib.auth.models import AnonymousUser

from accounts.services import token_for_key


class TokenOrSessionAuthMiddleware:
    def __init__(self, inner):
        self.inner = inner
        self.browser = AllowedHostsOriginValidator(AuthMiddlewareStack(inner))

    async def __call__(self, scope, receive, send):
        token = parse_qs(scope.get("query_string", b"").decode("latin1")).get("token", [None])[0]
        found = await database_sync_to_async(token_for_key)(key=token) if token else None
        if found is not None:
            scope = dict(scope, token_user=found[1], token_id=found[0], token_key=token)
        has_origin = any(name == b"origin" for name, _ in scope.get("headers", []))
        if has_origin:
            return await self.browser(scope, receive, send)
        if found is None:
            return await WebsocketDenier()(scope, receive, send)
        return await self.inner(dict(scope, user=AnonymousUser()), receive, send)
