"""Routing on the normalised path (#6): every variant of a moderated route is moderated."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from guardstream.errors import ConfigError
from guardstream.routes import PassthroughRule, Router, normalize_path, redacted_path

ROUTER = Router()


@pytest.mark.parametrize(
    "path",
    [
        "/v1/chat/completions",
        "/v1/chat/./completions",
        "/v1/x/../chat/completions",
        "/v1//chat/completions",
        "/v1/chat/completions/",
        "/chat/completions",
        "/openai/v1/chat/completions",
        "/api/v1/chat/completions",
        "/v1beta/openai/chat/completions",
        "/openai/deployments/gpt4o/chat/completions",
        "/../v1/chat/completions",
    ],
)
def test_every_form_of_the_chat_route_is_moderated_on_the_path_sent_upstream(path: str) -> None:
    route = ROUTER.route("POST", path)
    assert (route.kind, route.provider) == ("moderated", "openai-chat")
    assert "/." not in route.path and "//" not in route.path and not route.path.endswith("/")


@pytest.mark.parametrize(
    ("method", "path", "provider"),
    [
        ("POST", "/v1/responses", "openai-responses"),
        ("POST", "/v1/completions", "openai-completions"),
        ("POST", "/v1/messages", "anthropic"),
        ("POST", "/v1beta/models/gemini-2.0-flash:streamGenerateContent", "gemini"),
        ("POST", "/v1/models/gemini-2.0-flash:generateContent", "gemini"),
    ],
)
def test_each_format_has_its_route(method: str, path: str, provider: str) -> None:
    assert ROUTER.route(method, path).provider == provider


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models"),
        ("GET", "/v1/models/gpt-4o"),
        ("POST", "/v1/embeddings"),
        ("POST", "/v1/messages/count_tokens"),
        ("GET", "/v1/files/file-abc"),
        ("GET", "/v1beta/models"),
        ("POST", "/v1beta/models/gemini-2.0-flash:countTokens"),
        ("GET", "/openai/v1/models"),
    ],
)
def test_routes_without_generated_text_pass_by_default(method: str, path: str) -> None:
    assert ROUTER.route(method, path).kind == "passthrough"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/files/file-abc/content"),
        ("GET", "/v1/responses/resp_1"),
        ("GET", "/v1/chat/completions/chatcmpl-1"),
        ("POST", "/v1/assistants"),
        ("POST", "/v1/images/generations"),
        ("GET", "/v1/chat/completions"),
        ("POST", "/v1beta/models/gemini-2.0-flash:predict"),
    ],
)
def test_anything_else_is_refused(method: str, path: str) -> None:
    assert ROUTER.route(method, path).kind == "refused"


def test_refusals_speak_the_callers_api() -> None:
    assert ROUTER.route("POST", "/v1/messages/batches").style == "anthropic"
    assert ROUTER.route("POST", "/v1beta/models/x:predict").style == "gemini"
    assert ROUTER.route("POST", "/v1/assistants", {"anthropic-version": "2023-06-01"}).style == "anthropic"
    assert ROUTER.route("POST", "/v1/assistants").style == "openai"


def test_passthrough_stars_stay_within_a_segment_unless_doubled() -> None:
    assert PassthroughRule.parse("GET /v1/files/*").matches("GET", "/v1/files/f1")
    assert not PassthroughRule.parse("GET /v1/files/*").matches("GET", "/v1/files/f1/content")
    assert PassthroughRule.parse("GET /v1/files/**").matches("GET", "/v1/files/f1/content")
    assert not PassthroughRule.parse("GET /v1/files/*").matches("POST", "/v1/files/f1")


def test_a_bad_passthrough_entry_is_refused_at_start_up() -> None:
    with pytest.raises(ConfigError, match="not 'METHOD /path'"):
        Router(["/v1/models"])


def test_normalising_never_climbs_above_the_root() -> None:
    assert normalize_path("/a/../../b/./c//") == "/b/c"


# -- the path as sent: escapes decoded once, never one that servers could read two ways -----------


@pytest.mark.parametrize(
    "path",
    [
        "/v1beta/models/gemini-2.0-flash:generateContent%23:countTokens",
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent%3Falt=sse%23:countTokens",
        "/responses%23/models/x:countTokens",
        "/v1/files/file-1%2Fcontent",
        "/v1/files/file-1%2fcontent",
        "/v1/files/file-1%5Ccontent",
        "/v1/files/file-1\\content",
        "/v1/models/m%2523",
        "/v1/models/m%zz",
        "/v1/models/m;x",
        "/v1/models/m%3Bx",
        "/v1/models/m%00",
        "/v1/models/m%0A",
        "/v1/models/m%20",
        "/v1/models/m%E2%80%8B",
        "/v1/models/m%FF",
    ],
)
def test_a_path_whose_escapes_servers_could_read_differently_is_invalid(path: str) -> None:
    route = ROUTER.route("GET", path)
    assert route.kind == "invalid" and route.problem


def test_escapes_that_mean_the_same_to_every_server_are_decoded_before_routing() -> None:
    route = ROUTER.route("POST", "/v1beta/models/gemini%2D2.0-flash%3AgenerateContent")
    assert (route.kind, route.provider) == ("moderated", "gemini")
    assert route.path == "/v1beta/models/gemini-2.0-flash:generateContent"


def test_the_path_sent_upstream_decodes_to_exactly_the_routed_path() -> None:
    route = ROUTER.route("GET", "/v1/models/caf%C3%A9:x@y")
    assert route.kind == "passthrough" and route.path == "/v1/models/café:x@y"
    assert route.wire_path == "/v1/models/caf%C3%A9:x@y" and unquote(route.wire_path) == route.path


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/v1/chat/completions", "/v1/chat/completions"),
        ("/v1beta/models/gemini-2.0-flash:streamGenerateContent", "/v1beta/models/*:streamGenerateContent"),
        ("/openai/deployments/AKIA4HJQ7XRZ2PLWKD5N/chat/completions", "/openai/deployments/*/chat/completions"),
        ("/v1/models/x:AKIA4HJQ7XRZ2PLWKD5N", "/v1/models/*:*"),
        ("/AKIA4HJQ7XRZ2PLWKD5N", "/*"),
        ("/", "/"),
    ],
)
def test_a_logged_path_keeps_only_the_apis_own_words(path: str, logged: str) -> None:
    assert redacted_path(path) == logged
