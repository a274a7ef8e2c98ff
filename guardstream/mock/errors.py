"""Error bodies in each provider's native shape, so each official SDK raises its usual error class."""

from __future__ import annotations

from collections.abc import Callable

from guardstream.mock.framing import JSONObject

ErrorBody = Callable[[int, str], JSONObject]

_OPENAI_ERROR_KINDS = {
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_GOOGLE_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def openai_error(status: int, message: str) -> JSONObject:
    default = ("server_error", None) if status >= 500 else ("invalid_request_error", None)
    type_, code = _OPENAI_ERROR_KINDS.get(status, default)
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def anthropic_error(status: int, message: str) -> JSONObject:
    type_ = _ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": type_, "message": message}, "request_id": "req_mock_error"}


def gemini_error(status: int, message: str) -> JSONObject:
    default = "INTERNAL" if status >= 500 else "FAILED_PRECONDITION"
    return {"error": {"code": status, "message": message, "status": _GOOGLE_STATUSES.get(status, default)}}
