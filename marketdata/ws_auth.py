from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async

from accounts.services import user_for_token


class TokenOrSessionAuthMiddleware:
    """Bots authenticate a websocket with ``?token=<key>``; browsers with their Django session."""

    def __init__(self, inner):
        self.inner = AuthMiddlewareStack(inner)

    async def __call__(self, scope, receive, send):
        token = parse_qs(scope.get("query_string", b"").decode()).get("token", [None])[0]
        if token:
            user = await database_sync_to_async(user_for_token)(key=token)
            if user is not None:
                scope = dict(scope, token_user=user)
        return await self.inner(scope, receive, send)
