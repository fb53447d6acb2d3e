"""The OpenAPI schema, generated from the API views by drf-spectacular.

Views follow one convention (STYLE.md), and the schema is read from it, so a new view documents
itself: a nested ``InputSerializer`` is the body of POST/PUT/PATCH; ``FilterSerializer`` (or, on
a GET, ``InputSerializer``) gives the query parameters; ``OutputSerializer`` is the response (a
list on a GET of a ``...List...Api`` view). A view that returns plain dicts says its response
with ``@extend_schema(responses=...)``. Every operation gets the error responses it can answer,
in the one error format; lists with a ``cursor`` parameter document ``X-Next-Cursor``.
"""

from __future__ import annotations

import re

from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
WITH_BODY = ("POST", "PUT", "PATCH")


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable, e.g. insufficient_funds, rate_limited.")
    message = serializers.CharField(help_text="For people.")
    fields = serializers.DictField(help_text="Per input field, its problems (a list of messages).")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


ERRORS = {
    "400": "Invalid input: a field or query parameter (invalid), malformed JSON (parse_error), JSON nested too deep (too_deep), or a broken rule.",
    "401": (
        "Not authenticated, or authentication refused. Signed requests: unknown_api_key, revoked_api_key, "
        "invalid_timestamp, stale_timestamp, bad_signature, replayed_request, signature_required."
    ),
    "403": "Not allowed: insufficient_scope (a read-only API key changing something), permission_denied.",
    "404": "No such object (or not the caller's: another user's order is a 404).",
    "405": "Method not allowed on this path.",
    "409": "Conflicts with the current state (e.g. client_order_id_reused, market_halted).",
    "413": "payload_too_large: the body is over the size limit.",
    "415": "Unsupported content type: send application/json.",
    "429": "rate_limited: over the caller's request rate; wait Retry-After seconds.",
}


def _owner_name(qualname: str) -> str:
    owner = qualname.split(".")[-2]
    return re.sub(r"(ListCreate|List|Detail)?Api$", "", owner) or owner


class AutoSchema(openapi.AutoSchema):
    def _nested(self, name: str):
        return getattr(type(self.view), name, None)

    def get_request_serializer(self):
        if self.method in WITH_BODY and self._nested("InputSerializer") is not None:
            return self._nested("InputSerializer")
        if self.method not in WITH_BODY:
            return None
        return super().get_request_serializer()

    def get_response_serializers(self):
        output = self._nested("OutputSerializer")
        if output is None:
            return super().get_response_serializers()
        many = self.method == "GET" and "List" in type(self.view).__name__
        code = {"POST": 201, "DELETE": 202}.get(self.method, 200)
        return {code: output(many=many)}

    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if self.method == "GET":
            query = self._nested("FilterSerializer") or self._nested("InputSerializer")
            if query is not None:
                parameters.append(query)
        return parameters

    def get_serializer_name(self, serializer, direction):
        qualname = type(serializer).__qualname__
        if "." in qualname:
            # Nested InputSerializer/OutputSerializer classes share names; name them after their view.
            return _owner_name(qualname) + ("Filter" if qualname.endswith("FilterSerializer") else "")
        return super().get_serializer_name(serializer, direction)

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code in self._error_codes():
            if code not in responses:
                error = OpenApiResponse(ErrorSerializer, description=ERRORS[code])
                responses[code] = self._get_response_for_code(error, code, direction=direction)
        return responses

    def _error_codes(self) -> list[str]:
        codes = ["400", "405", "429"]
        if any(self.get_auth()):
            codes += ["401", "403"]
        if "{" in self.path or self.method != "GET":
            codes.append("404")
        if self.method in UNSAFE:
            codes.append("409")
        if self.method in WITH_BODY:
            codes += ["413", "415"]
        return sorted(codes)


def postprocess(result, generator, request, public):
    """Headers no serializer carries: the next page's cursor, and how long to wait after a 429."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            names = {parameter["name"] for parameter in operation.get("parameters", ())}
            if "cursor" in names and "200" in responses:
                responses["200"].setdefault("headers", {})["X-Next-Cursor"] = {
                    "description": "Present when there is a next page: pass it back as ?cursor=.",
                    "schema": {"type": "string"},
                }
            if "429" in responses:
                responses["429"].setdefault("headers", {})["Retry-After"] = {
                    "description": "Seconds to wait before the next request.",
                    "schema": {"type": "integer", "minimum": 1},
                    "required": True,
                }
    result.setdefault("paths", {}).update(STREAM_PATHS)
    return result


# Endpoints that are not DRF views (a stream, not a JSON body), so the generator cannot see them.
STREAM_PATHS = {
    "/api/v1/markets/{symbol}/depth/stream": {
        "get": {
            "operationId": "markets_depth_stream",
            "summary": "Depth as server-sent events",
            "description": (
                "A `snapshot` event (the depth object), then `update` events of changed levels "
                '(`"0"` removes a level); every event\'s `id:` is the depth `sequence`. Reconnecting with '
                "`Last-Event-ID` gives a fresh snapshot when anything was missed. Public."
            ),
            "tags": ["markets"],
            "security": [{}],
            "parameters": [
                {"name": "symbol", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {
                    "description": "The event stream.",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                "404": {
                    "description": "Unknown market.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            },
        }
    }
}


class TokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Authorization: Token <key>` (createtrader prints one; the profile page makes more).",
        }


class SignedRequestScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.SignedRequestAuthentication"
    name = ["apiKeyId", "apiKeyTimestamp", "apiKeySignature"]

    def get_security_definition(self, auto_schema):
        signature = (
            "hex HMAC-SHA256(secret, timestamp + METHOD + path_with_query + body): body is the raw request "
            "body, empty for GET and DELETE. Timestamps more than 5 s from the server's clock, and a "
            "(key, timestamp, signature) seen before, are refused. A key with scope `read` may only read; "
            "`trade` may also place and cancel orders and request funding."
        )
        return [
            {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "The key id of an API key pair."},
            {"type": "apiKey", "in": "header", "name": "X-API-Timestamp", "description": "Unix time in milliseconds."},
            {"type": "apiKey", "in": "header", "name": "X-API-Signature", "description": signature},
        ]
