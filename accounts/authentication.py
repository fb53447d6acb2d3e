from rest_framework import authentication, exceptions

from .services import SignatureRefused, signed_request_authenticate, user_for_token


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Token <key>`."""

    keyword = "Token"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header.")
        try:
            key = header[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid token header.") from None
        user = user_for_token(key=key)
        if user is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        return user, key

    def authenticate_header(self, request):
        return self.keyword


def path_with_query(request) -> str:
    """The path and query exactly as the client sent them (what it signed), percent-escapes intact."""
    raw = request._request.scope.get("raw_path") if hasattr(request._request, "scope") else None
    path = raw.decode("latin-1") if raw else request._request.get_full_path().partition("?")[0]
    query = request._request.META.get("QUERY_STRING", "")
    return f"{path}?{query}" if query else path


class SignedRequestAuthentication(authentication.BaseAuthentication):
    """`X-API-Key`, `X-API-Timestamp`, `X-API-Signature`: a request signed with an API key pair.

    ``request.auth`` is the ``ApiKey``, so permissions can check its scopes.
    """

    def authenticate(self, request):
        meta = request._request.META
        key_id = meta.get("HTTP_X_API_KEY")
        if key_id is None:
            return None
        timestamp, signature = meta.get("HTTP_X_API_TIMESTAMP"), meta.get("HTTP_X_API_SIGNATURE")
        if not timestamp or not signature:
            raise exceptions.AuthenticationFailed(
                "A signed request needs X-API-Key, X-API-Timestamp and X-API-Signature.", code="signature_required"
            )
        try:
            return signed_request_authenticate(
                key_id=key_id,
                timestamp=timestamp,
                signature=signature,
                method=request.method,
                path=path_with_query(request),
                # The raw body, read once here and kept by Django for the parser.
                body=request._request.body,
            )
        except SignatureRefused as exc:
            raise exceptions.AuthenticationFailed(exc.message, code=exc.code) from None
