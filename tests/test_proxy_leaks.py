"""Zero leak around the window (#6), end to end: the official `openai` SDK or raw httpx ->
`guardstream` under uvicorn -> the mock model scripted to send exactly the bytes of each attack.

One test per way a secret used to get around the window; the numbers are the issue's.
"""

from __future__ import annotations

import gzip
import json
import re
import resource
import socket
import time
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from guardstream.config import RouteSettings, ServerSettings, Timeouts
from tests.conftest import MockModel, ProxyFactory, RunningProxy, mock_headers

SECRET = "AKIA4HJQ7XRZ2PLWKD5N"
MARK = SECRET[:4].encode()
MESSAGES: list[Any] = [{"role": "user", "content": "Tell me something."}]
DONE = "data: [DONE]\n\n"

_clients: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def sdk(proxy: RunningProxy, base: str = "/v1") -> openai.OpenAI:
    client = openai.OpenAI(base_url=proxy.url + base, api_key="sk-test", max_retries=0)
    _clients.append(client)
    return client


def chunk(delta: dict[str, Any] | None = None, *, index: int = 0, finish: str | None = None, **extra: Any) -> str:
    choice: dict[str, Any] = {"index": index, "delta": delta or {}, "finish_reason": finish, **extra}
    payload = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [choice]}
    return f"data: {json.dumps(payload)}\n\n"


def post_raw(proxy: RunningProxy, script: dict[str, Any], *, stream: bool = True, **body: Any) -> httpx.Response:
    payload = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": stream, **body}
    return httpx.post(f"{proxy.url}/v1/chat/completions", json=payload, headers=mock_headers(script), timeout=30)


def sdk_stream(proxy: RunningProxy, script: dict[str, Any], **kwargs: Any) -> tuple[str, BaseException | None]:
    """What the README's client prints: choices[0].delta.content, and the error it ends with."""
    text = []
    try:
        stream = sdk(proxy).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers=mock_headers(script), **kwargs
        )
        for event in stream:
            if event.choices:
                text.append(event.choices[0].delta.content or "")
    except openai.APIError as exc:
        return "".join(text), exc
    return "".join(text), None


def assert_no_leak(raw: bytes) -> None:
    """Not in the bytes, nor in any JSON string the client could unescape from them."""
    assert MARK not in raw
    assert MARK not in json.dumps(raw.decode("utf-8", "replace")).encode()
    for line in raw.decode("utf-8", "replace").splitlines():
        if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
            assert SECRET[:4] not in json.dumps(json.loads(line[5:]), ensure_ascii=False)


# -- 1. fields never read ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "delta",
    [
        {"reasoning_content": f"the key is {SECRET} ok"},
        {"reasoning": f"the key is {SECRET} ok"},
        {"function_call": {"name": "deploy", "arguments": f'{{"key": "{SECRET}"}}'}},
        {"audio": {"id": "audio_1", "transcript": f"the key is {SECRET} ok"}},
        {
            "tool_calls": [
                {"index": 0, "id": "call_1", "type": "function", "function": {"name": SECRET, "arguments": ""}}
            ]
        },
        {"tool_calls": [{"index": 0, "id": f"call_{SECRET}", "type": "function", "function": {"name": "f"}}]},
        {"annotations": [{"type": "url_citation", "url_citation": {"url": f"https://x.io/{SECRET}", "title": "t"}}]},
        {"annotations": [{"type": "url_citation", "url_citation": {"url": "https://x.io/", "title": SECRET}}]},
        {"content": [{"type": "text", "text": f"the key is {SECRET} ok"}]},
        {"a_field_invented_tomorrow": f"the key is {SECRET} ok"},
    ],
)
def test_1_every_streamed_field_is_moderated(proxy: RunningProxy, delta: dict[str, Any]) -> None:
    raw = post_raw(proxy, {"raw_events": [chunk({"content": "Sure. "}), chunk(delta), DONE]}).content
    assert_no_leak(raw)
    assert b'"code":"content_filter"' in raw


@pytest.mark.parametrize(
    "event",
    [
        chunk(text=f"legacy {SECRET} ok"),
        chunk(message={"role": "assistant", "content": f"snapshot {SECRET} ok"}),
    ],
)
def test_1_legacy_and_snapshot_fields_in_a_chunk_are_moderated(proxy: RunningProxy, event: str) -> None:
    assert_no_leak(post_raw(proxy, {"raw_events": [event, DONE]}).content)


@pytest.mark.parametrize(
    "message",
    [
        {"role": "assistant", "content": None, "reasoning_content": f"key {SECRET}"},
        {"role": "assistant", "content": [{"type": "text", "text": f"key {SECRET}"}]},
        {
            "role": "assistant",
            "content": "ok",
            "annotations": [{"type": "url_citation", "url_citation": {"title": SECRET}}],
        },
        {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": f'{{"k": "{SECRET}"}}'}},
    ],
)
def test_1_every_field_of_a_json_answer_is_moderated(proxy: RunningProxy, message: dict[str, Any]) -> None:
    body = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m"}
    body["choices"] = [{"index": 0, "message": message, "finish_reason": "stop"}]
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(proxy).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers=mock_headers({"raw_body": json.dumps(body)})
        )
    assert caught.value.code == "content_filter"
    assert SECRET not in str(caught.value.body)


def test_1_a_legacy_text_choice_in_a_json_answer_is_moderated(proxy: RunningProxy) -> None:
    body = {"id": "c1", "object": "chat.completion", "choices": [{"index": 0, "text": f"legacy {SECRET}"}]}
    raw = post_raw(proxy, {"raw_body": json.dumps(body)}, stream=False).content
    assert_no_leak(raw)


# -- 2. logprobs repeat the text ------------------------------------------------------------------


def test_2_logprob_alternatives_cannot_spell_a_key(proxy: RunningProxy) -> None:
    raw = post_raw(proxy, {"reply": "Hello there, friend.", "logprobs": [SECRET]}, logprobs=True, top_logprobs=2)
    assert_no_leak(raw.content)


def test_2_the_released_head_of_a_cut_event_keeps_no_logprobs(proxy: RunningProxy) -> None:
    raw = post_raw(proxy, {"reply": f"Here it is: {SECRET} done", "chunk_chars": 40}, logprobs=True).content
    assert_no_leak(raw)
    head = json.loads(raw.split(b"\n\n")[1][6:])
    assert head["choices"][0]["delta"]["content"] == "Here it is: " and head["choices"][0]["logprobs"] is None


def test_2_a_redacted_event_keeps_no_address_in_its_logprobs(proxy: RunningProxy) -> None:
    raw = post_raw(proxy, {"reply": "Mail jane.doe@example.com today.", "chunk_chars": 40}, logprobs=True).content
    assert b"jane" not in raw and b"[REDACTED:email]" in raw


def test_2_logprobs_beside_empty_content_cannot_carry_text(proxy: RunningProxy) -> None:
    entries = [{"token": t, "logprob": -0.1, "bytes": list(t.encode()), "top_logprobs": []} for t in SECRET]
    raw = post_raw(proxy, {"raw_events": [chunk({"content": ""}, logprobs={"content": entries}), DONE]}).content
    assert MARK not in raw and b"65, 75, 73, 65" not in raw and b"65,75,73,65" not in raw


# -- 3. finish_reason never resets a window -----------------------------------------------------


@pytest.mark.parametrize("finish", ["", "stop", "length"])
def test_3_a_finish_reason_mid_stream_does_not_split_a_key(proxy: RunningProxy, finish: str) -> None:
    events = [chunk({"content": "key AKIA4HJQ"}, finish=finish), chunk({"content": "7XRZ2PLWKD5N ok"}, finish=finish)]
    text, error = sdk_stream(proxy, {"raw_events": [*events, DONE]})
    assert "AKIA" not in text and isinstance(error, openai.APIError) and error.code == "content_filter"


# -- 4. channels are what the client reads ------------------------------------------------------


def test_4_alternating_indices_cannot_split_a_key_for_the_readme_client(proxy: RunningProxy) -> None:
    events = [chunk({"content": "key AKIA4HJQ"}, index=0), chunk({"content": "7XRZ2PLWKD5N ok"}, index=1)]
    text, error = sdk_stream(proxy, {"raw_events": [*events, DONE]})
    assert "AKIA" not in text and isinstance(error, openai.APIError)


def test_4_choices_stay_apart_for_the_sdk_accumulator(proxy: RunningProxy) -> None:
    text, error = sdk_stream(proxy, {"replies": ["first answer. ", "second answer. "]}, n=2)
    assert error is None and sorted(text.split(". ")) == ["", "", "first answer", "second answer"] or error is None


# -- 5. bytes that cannot be read are never forwarded ------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_5_a_compressed_stream_is_decoded_moderated_and_sent_plain(proxy: RunningProxy, encoding: str) -> None:
    response = post_raw(proxy, {"reply": f"the key {SECRET} ok", "content_encoding": encoding, "chunk_chars": 3})
    assert "content-encoding" not in response.headers
    assert_no_leak(response.content)
    assert b'"code":"content_filter"' in response.content


def test_5_a_clean_compressed_stream_arrives_whole(proxy: RunningProxy) -> None:
    text, error = sdk_stream(proxy, {"reply": "A calm answer.", "content_encoding": "gzip"})
    assert (text, error) == ("A calm answer.", None)


def test_5_an_x_gzip_stream_is_decoded_as_gzip(proxy: RunningProxy) -> None:
    script = {"reply": "A calm answer.", "content_encoding": "gzip", "headers": {"content-encoding": "x-gzip"}}
    assert sdk_stream(proxy, script) == ("A calm answer.", None)
    script["reply"] = f"the key {SECRET} ok"
    assert_no_leak(post_raw(proxy, script).content)


def test_5_an_x_gzip_json_answer_is_decoded_as_gzip(proxy: RunningProxy) -> None:
    script = {"reply": "Fine.", "content_encoding": "gzip", "headers": {"content-encoding": "x-gzip"}}
    completion = sdk(proxy).chat.completions.create(model="m", messages=MESSAGES, extra_headers=mock_headers(script))
    assert completion.choices[0].message.content == "Fine."


def test_5_a_json_answer_labelled_as_a_stream_is_not_relayed(proxy: RunningProxy) -> None:
    body = {"id": "c1", "object": "chat.completion", "choices": [{"index": 0, "message": {"content": SECRET}}]}
    script = {"raw_body": json.dumps(body), "content_type": "text/event-stream"}
    raw = post_raw(proxy, script, stream=False).content
    assert_no_leak(raw)


@pytest.mark.parametrize(
    "events",
    [
        [f": {SECRET}\n\n", chunk({"content": "ok"}), DONE],
        [f"id: {SECRET}\n" + chunk({"content": "ok"}), DONE],
        [f"event: ping\nretry: 1\n{SECRET}: 1\n\n", chunk({"content": "ok"}), DONE],
        [chunk({"content": "ok"}), DONE, chunk({"content": SECRET}), f"data: {SECRET}\n\n"],
        ['data: {"choices": [{"index": 0, "delta": {"content": "' + SECRET + '", "content": "ok"}}]}\n\n', DONE],
    ],
)
def test_5_bytes_outside_moderated_data_never_reach_the_client(proxy: RunningProxy, events: list[str]) -> None:
    assert_no_leak(post_raw(proxy, {"raw_events": events}).content)


# -- 6. error text is moderated -----------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 500])
def test_6_an_upstream_error_body_is_moderated_before_the_sdk_shows_it(proxy: RunningProxy, status: int) -> None:
    body = json.dumps({"error": {"message": f"tool_use_failed: {SECRET}", "type": "invalid_request_error"}})
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(proxy).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers=mock_headers({"status": status, "error_body": body})
        )
    assert caught.value.status_code == status
    assert "AKIA" not in str(caught.value) and "AKIA" not in caught.value.response.text


def test_6_a_plain_text_error_body_is_moderated_too(proxy: RunningProxy) -> None:
    raw = post_raw(proxy, {"status": 502, "error_body": f"bad gateway, key {SECRET}"}).content
    assert_no_leak(raw)


def test_6_an_error_event_in_the_stream_is_moderated(proxy: RunningProxy) -> None:
    event = f"data: {json.dumps({'error': {'message': f'failed on {SECRET}', 'type': 'server_error'}})}\n\n"
    text, error = sdk_stream(proxy, {"raw_events": [chunk({"content": "ok "}), event]})
    assert isinstance(error, openai.APIError) and "AKIA" not in str(error)


# -- 7. the end of a stream -----------------------------------------------------------------------


def test_7_an_upstream_that_ends_without_done_releases_nothing_held(proxy: RunningProxy) -> None:
    text, error = sdk_stream(proxy, {"raw_events": [chunk({"content": "the key AKIA4HJQ7XRZ2PLWKD5"})]})
    assert "AKIA" not in text
    assert isinstance(error, openai.APIError) and "without finishing" in str(error)


def test_7_a_last_block_without_its_blank_line_is_read_not_dropped(proxy: RunningProxy) -> None:
    response = post_raw(proxy, {"raw_events": [chunk({"content": "all good"}), DONE.strip("\n")]})
    assert response.content.endswith(b"data: [DONE]\n\n")


def test_7_a_compressed_json_answer_arrives_decoded_and_labelled_so(proxy: RunningProxy) -> None:
    completion = sdk(proxy).chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        extra_headers=mock_headers({"reply": "Fine.", "content_encoding": "gzip"}),
    )
    assert completion.choices[0].message.content == "Fine."


def test_7_a_stall_mid_key_ends_with_the_terminal_event_and_keeps_the_client_alive(
    start_proxy: ProxyFactory, mock_model: MockModel
) -> None:
    events = [chunk({"content": "the key is AKIA4H"}), chunk({"content": "JQ7XRZ2PLWKD5N"}), DONE]
    script = {"raw_events": events, "hold_after": 1, "hold_key": "stall"}
    with start_proxy(timeouts=Timeouts(idle=1.0, keepalive=0.3)) as proxy:
        started = time.monotonic()
        raw = post_raw(proxy, script).content
    mock_model.release("stall")
    assert time.monotonic() - started < 10
    assert raw.count(b": keep-alive\n\n") >= 2
    assert MARK not in raw and b"sent nothing for 1 s" in raw


# -- 8. routes ----------------------------------------------------------------------------------


def raw_request(proxy: RunningProxy, path: str, body: bytes, headers: dict[str, str], method: str = "POST") -> bytes:
    """A request whose path no client library would normalise first."""
    host, port = proxy.url.removeprefix("http://").split(":")
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


@pytest.mark.parametrize("path", ["/v1/chat/./completions", "/v1/x/../chat/completions", "//v1//chat/completions/"])
def test_8_dot_segments_cannot_route_around_the_input_rules(
    proxy: RunningProxy, mock_model: MockModel, path: str
) -> None:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": f"key {SECRET}"}]}).encode()
    answer = raw_request(proxy, path, body, {"content-type": "application/json"})
    assert answer.startswith(b"HTTP/1.1 400") and b"content_filter" in answer
    assert mock_model.requests() == []


def test_8_the_upstream_gets_exactly_the_routed_path(proxy: RunningProxy, mock_model: MockModel) -> None:
    body = json.dumps({"model": "m", "messages": MESSAGES}).encode()
    raw_request(proxy, "/v1/x/../chat/./completions", body, {"content-type": "application/json"})
    assert mock_model.requests()[-1]["path"] == "/v1/chat/completions"


GEMINI_PROMPT = json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).encode()


@pytest.mark.parametrize(
    "path",
    [
        "/v1beta/models/gemini-2.0-flash:generateContent%23:countTokens",
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent%3Falt=sse%23:countTokens",
        "/v1beta/models/gemini-2.0-flash:generateContent%2523:countTokens",
        "/v1beta/models/gemini-2.0-flash:generateContent;:countTokens",
        "/v1beta/models/gemini-2.0-flash:generateContent%00:countTokens",
    ],
)
def test_8_an_encoded_delimiter_cannot_pass_a_generation_call_off_as_a_passthrough_route(
    proxy: RunningProxy, mock_model: MockModel, path: str
) -> None:
    headers = {"content-type": "application/json", "x-goog-api-key": "k", **mock_headers({"reply": SECRET})}
    answer = raw_request(proxy, path, GEMINI_PROMPT, headers)
    assert answer.startswith(b"HTTP/1.1 400") and MARK not in answer
    error = json.loads(answer.partition(b"\r\n\r\n")[2])["error"]
    assert error["status"] == "INVALID_ARGUMENT" and "request path" in error["message"]
    assert mock_model.requests() == []


@pytest.mark.parametrize("path", ["/v1/files/file-1%2Fcontent", "/v1/files/file-1%5Ccontent", "/v1/files/f%20"])
def test_8_an_encoded_separator_or_space_is_refused_before_routing(
    proxy: RunningProxy, mock_model: MockModel, path: str
) -> None:
    answer = raw_request(proxy, path, b"", {}, method="GET")
    assert answer.startswith(b"HTTP/1.1 400") and b'"code":"invalid_request_path"' in answer
    assert mock_model.requests() == []


def test_8_the_upstream_decodes_the_path_it_is_sent_to_exactly_the_routed_one(
    proxy: RunningProxy, mock_model: MockModel
) -> None:
    headers = {"content-type": "application/json", "x-goog-api-key": "k"}
    answer = raw_request(proxy, "/v1beta/models/gemini%2D2.0-flash%3AgenerateContent", GEMINI_PROMPT, headers)
    assert answer.startswith(b"HTTP/1.1 200")
    sent = mock_model.requests()[-1]
    assert sent["raw_path"] == sent["path"] == "/v1beta/models/gemini-2.0-flash:generateContent"
    raw_request(proxy, "/v1/models/caf%C3%A9", b"", {}, method="GET")
    sent = mock_model.requests()[-1]
    assert (sent["raw_path"], sent["path"]) == ("/v1/models/caf%C3%A9", "/v1/models/café")


@pytest.mark.parametrize("base", ["", "/v1", "/openai/v1", "/api/v1", "/v1beta/openai", "/v1/"])
def test_8_common_base_urls_are_all_moderated(proxy: RunningProxy, mock_model: MockModel, base: str) -> None:
    client = sdk(proxy, base)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"key {SECRET}"}])
    assert mock_model.requests() == []
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    )
    assert text == "Hello! I am the guardstream mock model."


def test_8_an_unknown_route_is_refused_in_the_callers_format(proxy: RunningProxy, mock_model: MockModel) -> None:
    with pytest.raises(openai.PermissionDeniedError) as caught:
        sdk(proxy).post("/assistants/echo", cast_to=object, body={"mock": {}})
    assert "[routes] passthrough" in caught.value.message and "/v1/assistants/echo" in caught.value.message
    assert mock_model.requests() == []


def test_8_a_file_content_route_is_refused_but_its_metadata_passes(proxy: RunningProxy, mock_model: MockModel) -> None:
    assert httpx.get(f"{proxy.url}/v1/files/file-1", headers=mock_headers({"reply": SECRET})).status_code == 200
    refused = httpx.get(f"{proxy.url}/v1/files/file-1/content", headers=mock_headers({"reply": SECRET}))
    assert refused.status_code == 403 and MARK not in refused.content


def test_8_the_passthrough_list_is_the_operators_to_extend(start_proxy: ProxyFactory, mock_model: MockModel) -> None:
    routes = RouteSettings(passthrough=("POST /v1/assistants/*",))
    with start_proxy(routes=routes) as proxy:
        answer = httpx.post(f"{proxy.url}/v1/assistants/echo", json={}, headers=mock_headers({"reply": "hi"}))
    assert answer.status_code == 200 and mock_model.requests()[-1]["path"] == "/v1/assistants/echo"


# -- 9. the request, in full ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"tools": [{"type": "function", "function": {"name": "f", "description": f"uses {SECRET}", "parameters": {}}}]},
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"description": SECRET}}}]},
        {"functions": [{"name": "f", "description": SECRET}]},
        {"prediction": {"type": "content", "content": SECRET}},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"title": SECRET}}}},
        {"messages": [{"role": "assistant", "refusal": SECRET}]},
        {"messages": [{"role": "user", "name": SECRET, "content": "hi"}]},
        {"messages": [{"role": "user", "content": "key AKIA4HJQ"}, {"role": "user", "content": "7XRZ2PLWKD5N"}]},
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "AKIA4HJQ"}, {"type": "text", "text": "7XRZ2PLWKD5N"}],
                }
            ]
        },
    ],
)
def test_9_every_string_the_model_reads_is_checked(
    proxy: RunningProxy, mock_model: MockModel, extra: dict[str, Any]
) -> None:
    body = {"model": "m", "messages": MESSAGES, **extra}
    answer = httpx.post(f"{proxy.url}/v1/chat/completions", json=body)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "content_filter"
    assert mock_model.requests() == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "m", "messages": []} {"trailing": true}',
        b'{"model": "m", "messages": [{"role": "user", "content": "\xff"}]}',
        b'{"model": "m", "n": ' + b"1" * 4301 + b"}",
        b'{"model": "m", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"model": "m", "temperature": NaN}',
        b'{"model": "m", "messages": [], "messages": [{"role": "user", "content": "' + SECRET.encode() + b'"}]}',
        b"[]",
        b"",
    ],
)
def test_9_a_body_that_cannot_be_read_exactly_is_a_400(proxy: RunningProxy, mock_model: MockModel, body: bytes) -> None:
    answer = httpx.post(f"{proxy.url}/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_request_body"
    assert mock_model.requests() == []


def test_9_a_compressed_body_is_read_and_forwarded_decoded(proxy: RunningProxy, mock_model: MockModel) -> None:
    secret_body = json.dumps({"model": "m", "messages": [{"role": "user", "content": f"key {SECRET}"}]}).encode()
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    blocked = httpx.post(f"{proxy.url}/v1/chat/completions", content=gzip.compress(secret_body), headers=headers)
    assert blocked.status_code == 400 and mock_model.requests() == []
    clean = json.dumps({"model": "m", "messages": MESSAGES}).encode()
    headers["content-encoding"] = "deflate"
    assert (
        httpx.post(f"{proxy.url}/v1/chat/completions", content=zlib.compress(clean), headers=headers).status_code == 200
    )
    sent = mock_model.requests()[-1]
    assert sent["body"]["messages"] == MESSAGES and "content-encoding" not in sent["headers"]


def compressed_zeros(size: int, encoding: str) -> bytes:
    """`size` zero bytes, compressed a thousandfold: a request body that inflates far past its own size."""
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}[encoding]
    encoder = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = bytes(1 << 20)
    return b"".join(encoder.compress(block) for _ in range(size >> 20)) + encoder.flush()


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_9_a_compressed_body_over_the_limit_once_decoded_is_a_413_without_decoding_it_all(
    start_proxy: ProxyFactory, mock_model: MockModel, encoding: str
) -> None:
    bomb = compressed_zeros(128 << 20, encoding)
    headers = {"content-type": "application/json", "content-encoding": encoding}
    with start_proxy(server=ServerSettings(max_body_bytes=256 * 1024)) as proxy:
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        answer = httpx.post(f"{proxy.url}/v1/chat/completions", content=bomb, headers=headers, timeout=30)
        peak_growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert len(bomb) < 256 * 1024
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "request_too_large"
    assert "once decompressed" in answer.json()["error"]["message"]
    # Decoded in full, the 128 MiB would have raised the process's peak memory by as much.
    assert peak_growth_mib < 32
    assert mock_model.requests() == []


def test_9_a_compressed_body_cut_short_or_with_data_after_its_end_is_a_400(proxy: RunningProxy) -> None:
    clean = gzip.compress(json.dumps({"model": "m", "messages": MESSAGES}).encode())
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    for body in (clean[:-4], clean + b"more"):
        answer = httpx.post(f"{proxy.url}/v1/chat/completions", content=body, headers=headers)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_request_body"


# -- 10. an unpaired surrogate escape is malformed JSON, answered as such ----------------------------


def with_lone_surrogate(event: str) -> str:
    """`event` with its string "SURROGATE" replaced by one holding a lone `\\ud83d` escape (half an emoji)."""
    return event.replace('"SURROGATE"', '"x\\ud83d y"')


@pytest.mark.parametrize("plain_events_before", [1, 12])
def test_10_an_unpaired_surrogate_in_a_stream_ends_it_with_the_providers_error_event(
    proxy: RunningProxy, plain_events_before: int
) -> None:
    # After a dozen events of one shape the stream is read by its shape: both ways end the same.
    events = [chunk({"content": "ab "})] * plain_events_before
    events += [with_lone_surrogate(chunk({"content": "SURROGATE"})), DONE]
    text, error = sdk_stream(proxy, {"raw_events": events})
    assert text == "ab " * plain_events_before
    assert isinstance(error, openai.APIError) and not isinstance(error, openai.APIConnectionError)
    assert "malformed" in error.message


def test_10_an_unpaired_surrogate_in_a_json_answer_is_a_502_in_the_providers_format(proxy: RunningProxy) -> None:
    body = {"id": "c1", "object": "chat.completion", "choices": [{"index": 0, "message": {"content": "SURROGATE"}}]}
    script = {"raw_body": with_lone_surrogate(json.dumps(body)), "content_type": "application/json"}
    answer = post_raw(proxy, script, stream=False)
    assert answer.status_code == 502 and answer.json()["error"]["code"] == "upstream_error"


def test_10_an_unpaired_surrogate_in_a_request_is_a_400_in_the_providers_format(
    proxy: RunningProxy, mock_model: MockModel
) -> None:
    body = with_lone_surrogate(json.dumps({"model": "m", "messages": [{"role": "user", "content": "SURROGATE"}]}))
    answer = httpx.post(f"{proxy.url}/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_request_body"
    assert "unpaired surrogate" in answer.json()["error"]["message"]
    assert mock_model.requests() == []


# -- evasion ----------------------------------------------------------------------------------------


def test_zero_width_and_full_width_disguises_are_seen_through(proxy: RunningProxy) -> None:
    disguised = "\u200b".join("ＡＫＩＡ") + "4HJQ7XRZ2PLWKD5N"
    text, error = sdk_stream(proxy, {"reply": f"key {disguised} ok", "chunk_chars": 2})
    assert text == "key " and isinstance(error, openai.APIError) and error.code == "content_filter"


def test_text_that_only_looks_unusual_arrives_byte_for_byte(proxy: RunningProxy) -> None:
    reply = "ｆｕｌｌ ｗｉｄｔｈ, zero\u200bwidth, ligature ﬁne, emoji 🎉."
    text, error = sdk_stream(proxy, {"reply": reply, "chunk_chars": 3})
    assert (text, error) == (reply, None)


# -- JSON escapes in tool-call arguments ---------------------------------------------------------------

# The key as a model may write it in a call's arguments: JSON text the client parses, where
# `\u0041` is `A`. The client's `json.loads(arguments)` holds the key verbatim.
ESCAPED_ARGS_BEFORE = '{"region": "eu", "key": "'
ESCAPED_ARGS = ESCAPED_ARGS_BEFORE + "\\u0041KIA4HJQ\\u0037XRZ2PLWKD5N" + '"}'
# Where each format sends a call's arguments, and the path to them.
TOOL_ROUTES: dict[str, tuple[str, dict[str, Any]]] = {
    "chat": ("/v1/chat/completions", {"messages": MESSAGES}),
    "responses": ("/v1/responses", {"input": "hi"}),
    "anthropic": ("/v1/messages", {"max_tokens": 50, "messages": MESSAGES}),
}


def call_with_escaped_key(
    proxy: RunningProxy, fmt: str, *, stream: bool, arguments: str = ESCAPED_ARGS, chunk_chars: int = 3
) -> httpx.Response:
    path, body = TOOL_ROUTES[fmt]
    script = {"reply": "Calling.", "tool_calls": [{"name": "f", "arguments": arguments}], "chunk_chars": chunk_chars}
    payload = {"model": "m", "stream": stream, **body}
    return httpx.post(f"{proxy.url}{path}", json=payload, headers=mock_headers(script), timeout=30)


def events(raw: bytes) -> list[Any]:
    lines = raw.decode().splitlines()
    return [json.loads(line[5:]) for line in lines if line.startswith("data:") and line[5:].strip() != "[DONE]"]


def streamed_arguments(raw: bytes) -> str:
    """The arguments the client assembles from the deltas of a streamed call, in any format."""
    out = []
    for event in events(raw):
        for choice in event.get("choices") or []:
            for call in choice["delta"].get("tool_calls") or []:
                out.append(call.get("function", {}).get("arguments") or "")
        if event.get("type") == "response.function_call_arguments.delta":
            out.append(event["delta"])
        if event.get("type") == "content_block_delta" and event["delta"]["type"] == "input_json_delta":
            out.append(event["delta"]["partial_json"])
    return "".join(out)


def strings_with_escapes_decoded(node: Any) -> str:
    """Every string under `node`, with the JSON escapes inside it decoded too (what the client's
    parser makes of arguments)."""
    if isinstance(node, str):
        return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m[1], 16)), node)
    if isinstance(node, dict):
        return "\n".join(strings_with_escapes_decoded(v) for v in node.values())
    if isinstance(node, list):
        return "\n".join(strings_with_escapes_decoded(v) for v in node)
    return ""


def assert_no_piece_of_the_key(seen: str) -> None:
    assert not any(SECRET[i : i + 4] in seen for i in range(len(SECRET) - 3))


@pytest.mark.parametrize("fmt", list(TOOL_ROUTES))
def test_a_key_written_with_json_escapes_in_streamed_tool_arguments_is_blocked(proxy: RunningProxy, fmt: str) -> None:
    raw = call_with_escaped_key(proxy, fmt, stream=True).content
    assert ESCAPED_ARGS_BEFORE.startswith(streamed_arguments(raw))
    assert_no_piece_of_the_key(strings_with_escapes_decoded(events(raw)))
    assert b"secrets.aws-access-key-id" in raw or b"content_filter" in raw


@pytest.mark.parametrize("fmt", ["chat", "responses"])  # Anthropic's whole answer holds the input parsed
def test_a_key_written_with_json_escapes_in_whole_tool_arguments_is_blocked(proxy: RunningProxy, fmt: str) -> None:
    response = call_with_escaped_key(proxy, fmt, stream=False)
    assert response.status_code == 400
    assert_no_piece_of_the_key(strings_with_escapes_decoded(response.json()))


def test_an_address_written_with_json_escapes_in_tool_arguments_is_redacted_and_stays_json(
    proxy: RunningProxy,
) -> None:
    script = {"tool_calls": [{"name": "f", "arguments": '{"to": "jane.doe\\u0040example.com"}'}], "chunk_chars": 3}
    raw = post_raw(proxy, script).content
    assert json.loads(streamed_arguments(raw)) == {"to": "[REDACTED:email]"}


def test_a_key_written_with_json_escapes_in_legacy_function_call_arguments_is_blocked(proxy: RunningProxy) -> None:
    pieces = [ESCAPED_ARGS[i : i + 3] for i in range(0, len(ESCAPED_ARGS), 3)]
    calls = [chunk({"function_call": {"name": "f", "arguments": ""}})]
    calls += [chunk({"function_call": {"arguments": piece}}) for piece in pieces]
    raw = post_raw(proxy, {"raw_events": [*calls, DONE]}).content
    assert_no_piece_of_the_key(strings_with_escapes_decoded(events(raw)))
    assert b'"code":"content_filter"' in raw


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    fmt=st.sampled_from(list(TOOL_ROUTES)),
    escaped=st.lists(st.booleans(), min_size=len(SECRET), max_size=len(SECRET)),
    chunk_chars=st.integers(1, 8),
)
def test_no_character_of_a_key_with_any_mix_of_escapes_reaches_the_client_under_any_chunking(
    proxy: RunningProxy, fmt: str, escaped: list[bool], chunk_chars: int
) -> None:
    key = "".join(f"\\u{ord(ch):04x}" if esc else ch for ch, esc in zip(SECRET, escaped, strict=True))
    arguments = ESCAPED_ARGS_BEFORE + key + '"}'
    raw = call_with_escaped_key(proxy, fmt, stream=True, arguments=arguments, chunk_chars=chunk_chars).content
    assert ESCAPED_ARGS_BEFORE.startswith(streamed_arguments(raw))
    assert_no_piece_of_the_key(strings_with_escapes_decoded(events(raw)))
