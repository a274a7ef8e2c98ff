"""End-to-end tests of the scripted mock model: uvicorn on 127.0.0.1, driven by the official SDKs."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import anyio
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors, types as genai_types
from starlette.types import Message, Scope

from guardstream.mock import DEFAULT_REPLY, MockScript, MockScriptError, MockToolCall, create_mock_app
from guardstream.servers import serve_in_thread

pytestmark = pytest.mark.anyio

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def mock_url() -> Iterator[str]:
    with serve_in_thread(create_mock_app()) as url:
        yield url


@pytest.fixture
def openai_client(mock_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{mock_url}/v1", api_key="test", max_retries=0, timeout=5) as client:
        yield client


@pytest.fixture
def anthropic_client(mock_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=mock_url, api_key="test", max_retries=0, timeout=5) as client:
        yield client


@pytest.fixture
def genai_client(mock_url: str) -> Iterator[genai.Client]:
    with genai.Client(api_key="test", http_options={"base_url": mock_url, "timeout": 5000}) as client:
        yield client


@pytest.fixture
def http(mock_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mock_url, timeout=5) as client:
        yield client


def gemini_config(**mock: Any) -> genai_types.GenerateContentConfig:
    return genai_types.GenerateContentConfig(http_options=genai_types.HttpOptions(extra_body={"mock": mock}))


# --- MockScript ----------------------------------------------------------------------------------------------------


def test_script_defaults_without_mock_fields() -> None:
    assert MockScript.from_request({}, {}) == MockScript(reply=DEFAULT_REPLY, chunk_chars=4)


def test_script_reads_headers_and_body_wins() -> None:
    headers = {
        "X-Mock-Reply": "b64:" + base64.b64encode("héllo 🌍".encode()).decode(),
        "x-mock-chunk-chars": "3",
        "x-mock-delay-ms": "1.5",
        "x-mock-tool-calls": '[{"name": "f", "arguments": {"a": 1}}]',
    }
    script = MockScript.from_request({"mock": {"chunk_chars": 5}}, headers)
    assert script.reply == "héllo 🌍"
    assert script.chunk_chars == 5
    assert script.delay_ms == 1.5
    assert script.tool_calls == (MockToolCall(name="f", arguments='{"a":1}'),)


@pytest.mark.parametrize(
    ("mock", "headers"),
    [
        ({"chunk_chars": 0}, {}),
        ({"chunk_chars": "4"}, {}),
        ({"delay_ms": -1}, {}),
        ({"status": 200}, {}),
        ({"hold_after": 1}, {}),
        ({"replies": "a"}, {}),
        ({"tool_calls": [{"arguments": "{}"}]}, {}),
        ({"unknown": 1}, {}),
        ({}, {"x-mock-drop-after": "soon"}),
        ({}, {"x-mock-reply": "b64:!!"}),
        ({}, {"x-mock-nonsense": "1"}),
    ],
)
def test_script_rejects_invalid_fields(mock: dict[str, Any], headers: dict[str, str]) -> None:
    with pytest.raises(MockScriptError):
        MockScript.from_request({"mock": mock}, headers)


# --- OpenAI Chat Completions ---------------------------------------------------------------------------------------


def test_openai_chat_stream_text_equals_reply(openai_client: openai.OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_body={"mock": {"reply": "Streams are fun."}}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Streams are fun."
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert all(c.usage is None for c in chunks)


def test_openai_chat_stream_tool_call_arguments_reassemble(openai_client: openai.OpenAI) -> None:
    calls = [{"name": "get_weather", "arguments": '{"city": "Paris"}'}, {"name": "get_time", "arguments": "{}"}]
    stream = openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_body={"mock": {"reply": "", "tool_calls": calls}}
    )
    names: dict[int, str] = {}
    arguments: dict[int, str] = {}
    finish = None
    for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or []:
            assert call.function is not None
            names[call.index] = names.get(call.index, "") + (call.function.name or "")
            arguments[call.index] = arguments.get(call.index, "") + (call.function.arguments or "")
        finish = chunk.choices[0].finish_reason or finish
    assert names == {0: "get_weather", 1: "get_time"}
    assert arguments == {0: '{"city": "Paris"}', 1: "{}"}
    assert finish == "tool_calls"


def test_openai_chat_stream_helper_with_n_2_gives_one_reply_per_choice(openai_client: openai.OpenAI) -> None:
    with openai_client.chat.completions.stream(
        model="gpt-4o-mini", messages=MESSAGES, n=2, extra_body={"mock": {"replies": ["first one", "second one"]}}
    ) as stream:
        completion = stream.get_final_completion()
    assert [choice.message.content for choice in completion.choices] == ["first one", "second one"]


def test_openai_chat_stream_include_usage_sends_final_usage_chunk(openai_client: openai.OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_openai_chat_stream_refusal(openai_client: openai.OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_body={"mock": {"refusal": "I can't help."}}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.refusal or "" for c in chunks) == "I can't help."
    assert all(not c.choices[0].delta.content for c in chunks)


def test_openai_chat_non_streaming(openai_client: openai.OpenAI) -> None:
    completion = openai_client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        extra_body={"mock": {"reply": "Plain JSON.", "tool_calls": [{"name": "f", "arguments": "{}"}]}},
    )
    message = completion.choices[0].message
    assert completion.object == "chat.completion"
    assert message.content == "Plain JSON."
    assert message.tool_calls is not None and message.tool_calls[0].type == "function"
    assert message.tool_calls[0].function.name == "f"
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.usage is not None and completion.usage.total_tokens > 0


def test_openai_chat_azure_deployment_path(mock_url: str) -> None:
    with openai.AzureOpenAI(
        azure_endpoint=mock_url, azure_deployment="my-gpt", api_key="test", api_version="2024-10-21", max_retries=0
    ) as client:
        completion = client.chat.completions.create(model="my-gpt", messages=MESSAGES)
    assert completion.choices[0].message.content == DEFAULT_REPLY


def test_openai_models_list(openai_client: openai.OpenAI) -> None:
    assert "gpt-4o-mini" in [model.id for model in openai_client.models.list()]


# --- OpenAI Responses ----------------------------------------------------------------------------------------------


def test_openai_responses_stream_events(openai_client: openai.OpenAI) -> None:
    stream = openai_client.responses.create(model="gpt-4o-mini", input="hi", stream=True)
    events = list(stream)
    types = [event.type for event in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert "".join(deltas) == DEFAULT_REPLY


def test_openai_responses_stream_helper_final_response(openai_client: openai.OpenAI) -> None:
    mock = {"reply": "Done.", "tool_calls": [{"name": "lookup", "arguments": '{"q": "x"}'}]}
    with openai_client.responses.stream(model="gpt-4o-mini", input="hi", extra_body={"mock": mock}) as stream:
        for _event in stream:
            pass
        response = stream.get_final_response()
    assert response.output_text == "Done."
    calls = [item for item in response.output if item.type == "function_call"]
    assert [(call.name, call.arguments) for call in calls] == [("lookup", '{"q": "x"}')]


def test_openai_responses_non_streaming(openai_client: openai.OpenAI) -> None:
    response = openai_client.responses.create(model="gpt-4o-mini", input="hi", extra_body={"mock": {"reply": "JSON"}})
    assert response.status == "completed"
    assert response.output_text == "JSON"


# --- Anthropic Messages --------------------------------------------------------------------------------------------


def test_anthropic_stream_helper_final_message(anthropic_client: anthropic.Anthropic) -> None:
    mock = {"reply": "Hi from Claude.", "thinking": "Let me think."}
    with anthropic_client.messages.stream(
        model="claude-sonnet-4-6", max_tokens=100, messages=MESSAGES, extra_body={"mock": mock}
    ) as stream:
        message = stream.get_final_message()
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].type == "thinking" and message.content[0].thinking == "Let me think."
    assert message.content[1].type == "text" and message.content[1].text == "Hi from Claude."
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens > 0


def test_anthropic_raw_stream(anthropic_client: anthropic.Anthropic) -> None:
    stream = anthropic_client.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=MESSAGES, stream=True)
    events = list(stream)
    assert events[0].type == "message_start"
    assert events[-1].type == "message_stop"
    text = "".join(
        event.delta.text for event in events if event.type == "content_block_delta" and event.delta.type == "text_delta"
    )
    assert text == DEFAULT_REPLY


def test_anthropic_tool_use_input_parsed(anthropic_client: anthropic.Anthropic) -> None:
    mock = {"reply": "", "tool_calls": [{"name": "get_weather", "arguments": '{"city": "Paris"}'}]}
    with anthropic_client.messages.stream(
        model="claude-sonnet-4-6", max_tokens=100, messages=MESSAGES, extra_body={"mock": mock}
    ) as stream:
        streamed = stream.get_final_message()
    plain = anthropic_client.messages.create(
        model="claude-sonnet-4-6", max_tokens=100, messages=MESSAGES, extra_body={"mock": mock}
    )
    for message in (streamed, plain):
        assert message.stop_reason == "tool_use"
        block = message.content[0]
        assert block.type == "tool_use" and block.name == "get_weather" and block.input == {"city": "Paris"}


def test_anthropic_non_streaming(anthropic_client: anthropic.Anthropic) -> None:
    message = anthropic_client.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=MESSAGES)
    assert message.content[0].type == "text" and message.content[0].text == DEFAULT_REPLY
    assert message.model == "claude-sonnet-4-6"


# --- Gemini --------------------------------------------------------------------------------------------------------


def test_gemini_stream_text_equals_reply(genai_client: genai.Client) -> None:
    chunks = list(
        genai_client.models.generate_content_stream(
            model="gemini-2.0-flash", contents="hi", config=gemini_config(reply="Gemini streams.", chunk_chars=3)
        )
    )
    assert "".join(chunk.text or "" for chunk in chunks) == "Gemini streams."
    assert chunks[-1].candidates is not None
    assert chunks[-1].candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert chunks[-1].usage_metadata is not None


def test_gemini_script_from_headers(mock_url: str) -> None:
    headers = {"x-mock-reply": "b64:" + base64.b64encode("Grüße 🌍".encode()).decode()}
    with genai.Client(api_key="test", http_options={"base_url": mock_url, "headers": headers}) as client:
        chunks = list(client.models.generate_content_stream(model="gemini-2.0-flash", contents="hi"))
    assert "".join(chunk.text or "" for chunk in chunks) == "Grüße 🌍"


def test_gemini_generate_content_with_function_call(genai_client: genai.Client) -> None:
    config = gemini_config(reply="Calling.", tool_calls=[{"name": "lookup", "arguments": '{"q": "x"}'}])
    response = genai_client.models.generate_content(model="gemini-2.0-flash", contents="hi", config=config)
    assert response.text == "Calling."
    assert response.function_calls is not None
    assert [(call.name, call.args) for call in response.function_calls] == [("lookup", {"q": "x"})]


def test_gemini_stream_without_alt_sse_is_a_json_array(http: httpx.Client) -> None:
    response = http.post("/v1beta/models/gemini-2.0-flash:streamGenerateContent", json={"contents": []})
    chunks = response.json()
    assert response.headers["content-type"] == "application/json"
    assert "".join(chunk["candidates"][0]["content"]["parts"][0]["text"] for chunk in chunks) == DEFAULT_REPLY


# --- Wire format ---------------------------------------------------------------------------------------------------


def test_wire_framing_per_provider(http: httpx.Client) -> None:
    chat = http.post("/v1/chat/completions", json={"messages": [], "stream": True})
    assert chat.headers["content-type"].startswith("text/event-stream")
    assert chat.text.startswith("data: {") and chat.text.endswith("\n\ndata: [DONE]\n\n")

    anthropic_events = http.post("/v1/messages", json={"messages": [], "stream": True}).text.split("\n\n")[:-1]
    for event in anthropic_events:
        name, data = event.split("\n")
        assert json.loads(data.removeprefix("data: "))["type"] == name.removeprefix("event: ")

    gemini = http.post("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", json={"contents": []})
    events = gemini.content.split(b"\r\n\r\n")
    assert events[-1] == b"" and all(event.startswith(b"data: {") for event in events[:-1])
    assert json.loads(events[-2][6:])["candidates"][0]["finishReason"] == "STOP"


def test_identical_requests_get_identical_bytes(http: httpx.Client) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    first = http.post("/v1/chat/completions", json=body).content
    assert http.post("/v1/chat/completions", json=body).content == first
    other = http.post("/v1/chat/completions", json={**body, "mock": {"reply": "x"}}).content
    assert json.loads(other.split(b"\n")[0][6:])["id"] != json.loads(first.split(b"\n")[0][6:])["id"]


def test_unicode_line_separators_are_escaped(http: httpx.Client) -> None:
    mock = {"reply": "a\u2028b\u2029c é", "chunk_chars": 100}
    body = http.post("/v1/chat/completions", json={"messages": [], "stream": True, "mock": mock}).content
    assert "\u2028".encode() not in body and b"\\u2028" in body
    assert "é".encode() in body


def test_delays_are_applied(openai_client: openai.OpenAI) -> None:
    started = time.monotonic()
    openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_body={"mock": {"first_byte_delay_ms": 150}}
    )
    assert time.monotonic() - started >= 0.15
    started = time.monotonic()
    mock = {"reply": "abcdef", "chunk_chars": 2, "delay_ms": 30}
    list(openai_client.chat.completions.create(model="m", messages=MESSAGES, stream=True, extra_body={"mock": mock}))
    assert time.monotonic() - started >= 0.15  # 6 events, 5 gaps


# --- Faults --------------------------------------------------------------------------------------------------------


def test_drop_after_makes_openai_raise(openai_client: openai.OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_body={"mock": {"drop_after": 3}}
    )
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 3


def test_malformed_after_makes_openai_raise(openai_client: openai.OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_body={"mock": {"malformed_after": 2}}
    )
    with pytest.raises(json.JSONDecodeError):
        list(stream)


def test_malformed_after_continues_normally(http: httpx.Client) -> None:
    body = {"messages": [], "stream": True, "mock": {"reply": "abcd", "chunk_chars": 2, "malformed_after": 1}}
    events = http.post("/v1/chat/completions", json=body).text.split("\n\n")
    assert events[1] == 'data: {"broken": '
    assert [json.loads(e[6:])["choices"][0]["delta"].get("content") for e in events[2:4]] == ["ab", "cd"]
    assert events[-2:] == ["data: [DONE]", ""]


def test_status_429_gives_openai_rate_limit_error(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_body={"mock": {"status": 429, "error_message": "Slow down."}}
        )
    assert caught.value.code == "rate_limit_exceeded"
    assert "Slow down." in caught.value.message


def test_status_errors_in_native_shapes(anthropic_client: anthropic.Anthropic, genai_client: genai.Client) -> None:
    with pytest.raises(anthropic.OverloadedError):
        anthropic_client.messages.create(
            model="claude-sonnet-4-6", max_tokens=10, messages=MESSAGES, extra_body={"mock": {"status": 529}}
        )
    with pytest.raises(genai_errors.ServerError) as caught:
        genai_client.models.generate_content(model="gemini-2.0-flash", contents="hi", config=gemini_config(status=503))
    assert caught.value.status == "UNAVAILABLE"


def test_invalid_script_is_a_native_400(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="chunk_chars"):
        openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_body={"mock": {"chunk_chars": 0}}
        )


async def test_hold_after_delivers_first_events_before_release(mock_url: str) -> None:
    mock = {"reply": "abcdefgh", "chunk_chars": 2, "hold_after": 2, "hold_key": "hold-test"}
    received: list[str] = []
    two_received = anyio.Event()
    async with (
        openai.AsyncOpenAI(base_url=f"{mock_url}/v1", api_key="test", max_retries=0) as client,
        httpx.AsyncClient(base_url=mock_url) as http,
    ):

        async def consume() -> None:
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_body={"mock": mock}
            )
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")
                if len(received) == 2:
                    two_received.set()

        with anyio.fail_after(5):
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(consume)
                await two_received.wait()
                await anyio.sleep(0.1)
                assert received == ["", "ab"]  # still held: nothing after the first two events
                (await http.post("/_mock/release/hold-test")).raise_for_status()
    assert "".join(received) == "abcdefgh"


async def test_client_disconnect_mid_stream_logs_no_error(mock_url: str, caplog: pytest.LogCaptureFixture) -> None:
    mock = {"chunk_chars": 1, "delay_ms": 20}
    body = {"model": "gpt-4o-mini", "messages": [], "stream": True, "mock": mock}
    with anyio.fail_after(5):
        async with httpx.AsyncClient(base_url=mock_url) as http:
            async with http.stream("POST", "/v1/chat/completions", json=body) as response:
                async for _chunk in response.aiter_raw():
                    break
            await anyio.sleep(0.2)  # let the server notice the disconnect
            assert (await http.get("/_mock/requests")).status_code == 200
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_disconnect_during_hold_ends_the_response() -> None:
    # Raw ASGI call: the client goes away while the stream waits on a gate nobody releases.
    body = json.dumps({"messages": [], "stream": True, "mock": {"hold_after": 1, "hold_key": "never"}}).encode()
    first_event_sent = anyio.Event()
    sent: list[Message] = []
    requests = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        if requests:
            return requests.pop()
        await first_event_sent.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            first_event_sent.set()

    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }
    with anyio.fail_after(1):
        await create_mock_app()(scope, receive, send)
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
    assert sent[1]["more_body"] is True


# --- Request log ---------------------------------------------------------------------------------------------------


def test_request_log_records_headers_and_body(openai_client: openai.OpenAI, http: httpx.Client) -> None:
    http.delete("/_mock/requests").raise_for_status()
    openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Trace": "t1"}, extra_body={"mock": {"reply": "r"}}
    )
    http.post("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", json={"contents": []})
    first, second = http.get("/_mock/requests").json()
    assert first["method"] == "POST" and first["path"] == "/v1/chat/completions"
    assert first["headers"]["authorization"] == "Bearer test"
    assert first["headers"]["x-trace"] == "t1"
    assert first["body"]["mock"] == {"reply": "r"}
    assert second["query"] == {"alt": "sse"}
    assert http.delete("/_mock/requests").json() == {"deleted": 2}
    assert http.get("/_mock/requests").json() == []
