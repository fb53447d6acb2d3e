"""The API's JSON parser: bounded in size and in nesting, so no body can make a request answer 5xx.

Python's JSON decoder recurses once per nesting level and gives up with ``RecursionError`` near a
thousand levels (a 500 if nothing catches it). That is caught and answered 400, and a parsed
value nested deeper than ``API_MAX_JSON_DEPTH`` is refused as well: no request of the contract
nests more than a few levels, and a bound keeps every later walk over the data cheap.
"""

from __future__ import annotations

import codecs

from django.conf import settings
from rest_framework import exceptions
from rest_framework.parsers import JSONParser
from rest_framework.utils import json


class PayloadTooLarge(exceptions.APIException):
    status_code = 413
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


def body_too_large() -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")


def read_limited(stream, content_length: int | None) -> bytes:
    """The whole body, refusing one over the limit without reading past it."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if content_length is not None and content_length > limit:
        raise body_too_large()
    body = stream.read(limit + 1) if stream is not None else b""
    if len(body) > limit:
        raise body_too_large()
    return body


def json_depth(value) -> int:
    """How deeply arrays and objects nest in a parsed value (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def content_length(request) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0) or None
    except (AttributeError, ValueError):
        return None


def json_body_parse(body: bytes, encoding: str = "utf-8"):
    """A request body's JSON value; ParseError (400) when it is malformed or nested too deeply."""
    limit = settings.API_MAX_JSON_DEPTH
    try:
        # DRF's loads refuses NaN and Infinity, which are not JSON.
        data = json.loads(codecs.decode(body, encoding))
    except RecursionError:
        raise exceptions.ParseError(f"JSON nested deeper than {limit} levels.", code="too_deep") from None
    except ValueError as exc:
        raise exceptions.ParseError(f"Malformed JSON: {exc}", code="parse_error") from None
    if json_depth(data) > limit:
        raise exceptions.ParseError(f"JSON nested deeper than {limit} levels.", code="too_deep")
    return data


class LimitedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        return json_body_parse(read_limited(stream, content_length(parser_context.get("request"))), encoding)
