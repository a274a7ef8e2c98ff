"""Binary data is skipped only where skipping cannot hide text: whole base64 values in the fields
a format keeps for images, audio and files. Text that merely starts like a data URL is text.

End to end as in test_proxy_leaks: raw httpx or the official SDK -> guardstream -> the mock model
scripted to send exactly these bytes; the middleware in-process through httpx's ASGI transport.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from guardstream import GuardStreamMiddleware
from guardstream.payload import TextPart, is_base64_media
from guardstream.providers.anthropic import WALKER as ANTHROPIC_WALKER
from guardstream.providers.openai_chat import WALKER as CHAT_WALKER
from tests.conftest import MockModel, RunningProxy, mock_headers
from tests.test_proxy_leaks import DONE, SECRET, assert_no_leak, chunk, post_raw

PREFIX = "data:image/png;base64,"
# A real (tiny) PNG: 1x1 pixel.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6300010000050001"
        "0d0a2db40000000049454e44ae426082"
    )
).decode()


def chat_answer(message: dict[str, Any]) -> str:
    body = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m"}
    body["choices"] = [{"index": 0, "message": message, "finish_reason": "stop"}]
    return json.dumps(body)


def walk_request(walker: Any, body: Any) -> list[TextPart]:
    parts: list[TextPart] = []
    walker.walk(body, (), "", lambda field: (("f", field),), parts)
    return parts


# -- what counts as binary ---------------------------------------------------------------------------


def test_a_whole_base64_data_url_is_media() -> None:
    assert is_base64_media(PREFIX + PNG, bare=False)


@pytest.mark.parametrize(
    "value",
    [
        f"{PREFIX} here is the key {SECRET}",
        f"{PREFIX}{PNG} {SECRET}",
        "data:image/",
        PREFIX,
        f"data:image/png,{SECRET}",
        PNG,
    ],
)
def test_text_that_only_starts_like_a_data_url_is_not_media(value: str) -> None:
    assert not is_base64_media(value, bare=False)


def test_bare_base64_is_media_only_where_the_field_is_base64_by_definition() -> None:
    assert is_base64_media(PNG, bare=True) and not is_base64_media(f"the key {SECRET}", bare=True)


def test_a_data_url_prefix_in_a_text_field_is_read_as_text() -> None:
    parts = walk_request(CHAT_WALKER, {"messages": [{"role": "user", "content": f"{PREFIX} {SECRET}"}]})
    assert [p.text for p in parts if p.views] == [f"{PREFIX} {SECRET}"]


def test_a_real_image_in_an_image_field_is_not_read() -> None:
    image = {"type": "image_url", "image_url": {"url": PREFIX + PNG}}
    parts = walk_request(CHAT_WALKER, {"messages": [{"role": "user", "content": [image]}]})
    assert PREFIX + PNG not in [p.text for p in parts]


def test_text_in_an_image_field_is_read() -> None:
    image = {"type": "image_url", "image_url": {"url": f"{PREFIX}x {SECRET}"}}
    parts = walk_request(CHAT_WALKER, {"messages": [{"role": "user", "content": [image]}]})
    assert f"{PREFIX}x {SECRET}" in [p.text for p in parts]


# -- answers ------------------------------------------------------------------------------------------


def test_a_key_after_a_data_url_prefix_in_a_json_answer_is_blocked(proxy: RunningProxy) -> None:
    body = chat_answer({"role": "assistant", "content": f"{PREFIX} here is the key: {SECRET}"})
    raw = post_raw(proxy, {"raw_body": body}, stream=False)
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "content_filter"
    assert_no_leak(raw.content)


def test_a_stream_delta_that_starts_with_a_data_url_prefix_is_moderated(proxy: RunningProxy) -> None:
    events = [chunk({"content": "Your key: "}), chunk({"content": f"data:image/ {SECRET[:10]}"})]
    raw = post_raw(proxy, {"raw_events": [*events, chunk({"content": f"{SECRET[10:]} done"}), DONE]}).content
    assert_no_leak(raw)
    assert b'"code":"content_filter"' in raw


def test_a_tool_argument_that_starts_with_a_data_url_prefix_is_moderated(proxy: RunningProxy) -> None:
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
    arguments = f'{{"u": "data:image/ {SECRET}"}}'
    events = [
        chunk({"tool_calls": [call]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]}),
    ]
    raw = post_raw(proxy, {"raw_events": [*events, DONE]}).content
    assert_no_leak(raw)
    assert b'"code":"content_filter"' in raw


# -- requests -----------------------------------------------------------------------------------------


def test_a_prompt_text_part_that_starts_with_a_data_url_prefix_is_checked(
    proxy: RunningProxy, mock_model: MockModel
) -> None:
    content = [{"type": "text", "text": f"data:image/ please use the key {SECRET}"}]
    body = {"model": "m", "messages": [{"role": "user", "content": content}]}
    answer = httpx.post(f"{proxy.url}/v1/chat/completions", json=body)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "content_filter"
    assert mock_model.requests() == []


def test_a_real_base64_image_in_the_prompt_reaches_the_model_untouched(
    proxy: RunningProxy, mock_model: MockModel
) -> None:
    content = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": PREFIX + PNG}}]
    body = {"model": "m", "messages": [{"role": "user", "content": content}]}
    answer = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers=mock_headers({"reply": "A dot."}))
    assert answer.status_code == 200
    assert mock_model.requests()[-1]["body"]["messages"][0]["content"][1]["image_url"]["url"] == PREFIX + PNG


def test_an_anthropic_plain_text_document_is_checked(proxy: RunningProxy, mock_model: MockModel) -> None:
    source = {"type": "text", "media_type": "text/plain", "data": f"The deploy key is {SECRET}"}
    body = {
        "model": "m",
        "max_tokens": 9,
        "messages": [{"role": "user", "content": [{"type": "document", "source": source}]}],
    }
    answer = httpx.post(f"{proxy.url}/v1/messages", json=body)
    assert answer.status_code == 400 and "guardstream blocked the request" in answer.text
    assert mock_model.requests() == []


def test_an_anthropic_plain_text_document_is_text_even_when_it_looks_like_base64() -> None:
    source = {"type": "text", "media_type": "text/plain", "data": SECRET}
    parts = walk_request(
        ANTHROPIC_WALKER, {"messages": [{"role": "user", "content": [{"type": "document", "source": source}]}]}
    )
    assert SECRET in [p.text for p in parts]


def test_an_anthropic_base64_image_is_not_read() -> None:
    source = {"type": "base64", "media_type": "image/png", "data": PNG}
    parts = walk_request(
        ANTHROPIC_WALKER, {"messages": [{"role": "user", "content": [{"type": "image", "source": source}]}]}
    )
    assert PNG not in [p.text for p in parts]


# -- the ASGI middleware ------------------------------------------------------------------------------


def middleware_app(contents: list[str]) -> GuardStreamMiddleware:
    async def chat(request: Request) -> StreamingResponse:
        events = [f"data: {json.dumps({'content': c})}\n\n" for c in contents]
        return StreamingResponse(iter([*events, 'data: {"done": true}\n\n']), media_type="text/event-stream")

    return GuardStreamMiddleware(Starlette(routes=[Route("/chat", chat)]), text_field="content")


@pytest.mark.anyio
@pytest.mark.parametrize(
    "contents",
    [["key ", f"data:image/ {SECRET[:10]}", SECRET[10:], " end"], [f"data:image/ key {SECRET}"]],
)
async def test_the_middleware_moderates_text_that_starts_with_a_data_url_prefix(contents: list[str]) -> None:
    transport = httpx.ASGITransport(app=middleware_app(contents))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        body = (await client.get("/chat")).content
    assert SECRET[:4].encode() not in body and b"content_filter" in body
