"""Native error bodies of each API family, for answers guardstream makes itself.

Each official SDK turns these into its normal exception type (`openai.BadRequestError`,
`anthropic.PermissionDeniedError`, `google.genai.errors.ClientError`, ...), so a refusal reads
like any other error the caller's code already handles.
"""

from __future__ import annotations

from typing import Literal

from guardstream.payload import dumps

Style = Literal["openai", "anthropic", "gemini"]

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    502: "api_error",
    504: "timeout_error",
}
_GOOGLE_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def openai_error(message: str, code: str, *, status: int) -> bytes:
    type_ = "server_error" if status >= 500 else "invalid_request_error"
    return dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}).encode()


def anthropic_error(message: str, code: str, *, status: int) -> bytes:
    type_ = _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return dumps({"type": "error", "error": {"type": type_, "message": message}}).encode()


def gemini_error(message: str, code: str, *, status: int) -> bytes:
    # "error" first and an integer code: what google-genai needs to raise its own errors.
    status_name = _GOOGLE_STATUSES.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    return dumps({"error": {"code": status, "message": message, "status": status_name}}).encode()


def error_body(style: Style, message: str, code: str, *, status: int) -> bytes:
    builder = {"openai": openai_error, "anthropic": anthropic_error, "gemini": gemini_error}[style]
    return builder(message, code, status=status)
