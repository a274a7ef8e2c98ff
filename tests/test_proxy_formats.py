"""Every wire format end to end (#7): the official SDKs -> guardstream under uvicorn -> the mock.

For OpenAI Responses, Anthropic Messages, Gemini and legacy Completions: a benign answer arrives
identical, a planted key raises the SDK's normal error naming the rule with nothing of the key in
any field at chunk sizes 1-8, an address is redacted in place, the graceful-finish configuration
ends cleanly with the provider's filtered reason, a blocked prompt is a 400 in the provider's
format that never reaches the model, and whole JSON answers are moderated the same way.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors, types as genai_types

from tests.conftest import MockModel, ProxyFactory, RunningProxy, mock_headers

SECRET = "AKIA4HJQ7XRZ2PLWKD5N"
BEFORE = "Here is the deploy key: "
LEAK = f"{BEFORE}{SECRET}. Keep it safe."
BENIGN = "A calm answer, with nothing in it to hide."
RULE = "rule secrets.aws-access-key-id (credential)"


@pytest.fixture
def finishing_proxy(start_proxy: ProxyFactory, mock_model: MockModel) -> Iterator[RunningProxy]:
    with start_proxy(on_violation="finish") as running:
        yield running


def dumped(events: list[Any]) -> str:
    return json.dumps([e.model_dump(mode="json") if hasattr(e, "model_dump") else str(e) for e in events])


# -- clients, one per format ------------------------------------------------------------------------


class Responses:
    """`client.responses.create(stream=True)` and the `responses.stream()` helper."""

    def __init__(self, proxy: RunningProxy) -> None:
        self.client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-test", max_retries=0)

    def stream(self, script: dict[str, Any], *, helper: bool = False, prompt: str = "hi") -> tuple[str, list[Any]]:
        text: list[str] = []
        events: list[Any] = []
        if helper:
            with self.client.responses.stream(
                model="gpt-4o-mini", input=prompt, extra_headers=mock_headers(script)
            ) as s:
                for event in s:
                    events.append(event)
                    if event.type == "response.output_text.delta":
                        text.append(event.delta)
        else:
            stream = self.client.responses.create(
                model="gpt-4o-mini", input=prompt, stream=True, extra_headers=mock_headers(script)
            )
            for raw_event in stream:
                events.append(raw_event)
                if raw_event.type == "response.output_text.delta":
                    text.append(raw_event.delta)
        return "".join(text), events

    def whole(self, script: dict[str, Any], prompt: str = "hi") -> str:
        response = self.client.responses.create(model="gpt-4o-mini", input=prompt, extra_headers=mock_headers(script))
        return response.output_text

    error = openai.APIError
    bad_request = openai.BadRequestError

    @staticmethod
    def finished_by_filter(events: list[Any]) -> bool:
        last = events[-1]
        return bool(last.type == "response.incomplete" and last.response.incomplete_details.reason == "content_filter")

    def close(self) -> None:
        self.client.close()


class Messages:
    """`client.messages.create(stream=True)` and the `messages.stream()` helper."""

    def __init__(self, proxy: RunningProxy) -> None:
        self.client = anthropic.Anthropic(base_url=proxy.url, api_key="sk-ant-test", max_retries=0)

    def stream(self, script: dict[str, Any], *, helper: bool = False, prompt: str = "hi") -> tuple[str, list[Any]]:
        text: list[str] = []
        events: list[Any] = []
        messages: Any = [{"role": "user", "content": prompt}]
        headers = mock_headers(script)
        if helper:
            with self.client.messages.stream(
                model="claude", max_tokens=64, messages=messages, extra_headers=headers
            ) as s:
                for event in s:
                    events.append(event)
                    if event.type == "content_block_delta" and event.delta.type == "text_delta":
                        text.append(event.delta.text)
                events.append(s.get_final_message())
        else:
            stream = self.client.messages.create(
                model="claude", max_tokens=64, messages=messages, stream=True, extra_headers=headers
            )
            for raw_event in stream:
                events.append(raw_event)
                if raw_event.type == "content_block_delta" and raw_event.delta.type == "text_delta":
                    text.append(raw_event.delta.text)
        return "".join(text), events

    def whole(self, script: dict[str, Any], prompt: str = "hi") -> str:
        message = self.client.messages.create(
            model="claude",
            max_tokens=64,
            messages=[{"role": "user", "content": prompt}],
            extra_headers=mock_headers(script),
        )
        return "".join(block.text for block in message.content if block.type == "text")

    error = anthropic.APIStatusError
    bad_request = anthropic.BadRequestError

    @staticmethod
    def finished_by_filter(events: list[Any]) -> bool:
        deltas = [e for e in events if getattr(e, "type", "") == "message_delta"]
        return bool(deltas and deltas[-1].delta.stop_reason == "refusal")

    def close(self) -> None:
        self.client.close()


class Gemini:
    """`generate_content_stream` and `generate_content` of google-genai."""

    def __init__(self, proxy: RunningProxy) -> None:
        self.client = genai.Client(api_key="test", http_options=genai_types.HttpOptions(base_url=proxy.url))

    def _config(self, script: dict[str, Any]) -> genai_types.GenerateContentConfig:
        return genai_types.GenerateContentConfig(http_options=genai_types.HttpOptions(headers=mock_headers(script)))

    def stream(self, script: dict[str, Any], *, helper: bool = False, prompt: str = "hi") -> tuple[str, list[Any]]:
        text: list[str] = []
        events: list[Any] = []
        for chunk in self.client.models.generate_content_stream(
            model="gemini-2.0-flash", contents=prompt, config=self._config(script)
        ):
            events.append(chunk)
            text.append(chunk.text or "")
        return "".join(text), events

    def whole(self, script: dict[str, Any], prompt: str = "hi") -> str:
        answer = self.client.models.generate_content(
            model="gemini-2.0-flash", contents=prompt, config=self._config(script)
        )
        return answer.text or ""

    error = genai_errors.ClientError
    bad_request = genai_errors.ClientError

    @staticmethod
    def finished_by_filter(events: list[Any]) -> bool:
        return bool(events[-1].candidates[0].finish_reason == genai_types.FinishReason.SAFETY)

    def close(self) -> None:
        self.client.close()


class Completions:
    """Legacy `client.completions.create`, streamed and whole."""

    def __init__(self, proxy: RunningProxy) -> None:
        self.client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-test", max_retries=0)

    def stream(self, script: dict[str, Any], *, helper: bool = False, prompt: str = "hi") -> tuple[str, list[Any]]:
        text: list[str] = []
        events: list[Any] = []
        for chunk in self.client.completions.create(
            model="gpt-3.5-turbo-instruct", prompt=prompt, stream=True, extra_headers=mock_headers(script)
        ):
            events.append(chunk)
            text.append(chunk.choices[0].text if chunk.choices else "")
        return "".join(text), events

    def whole(self, script: dict[str, Any], prompt: str = "hi") -> str:
        answer = self.client.completions.create(
            model="gpt-3.5-turbo-instruct", prompt=prompt, extra_headers=mock_headers(script)
        )
        return answer.choices[0].text

    error = openai.APIError
    bad_request = openai.BadRequestError

    @staticmethod
    def finished_by_filter(events: list[Any]) -> bool:
        return bool([e for e in events if e.choices][-1].choices[0].finish_reason == "content_filter")

    def close(self) -> None:
        self.client.close()


Client = Responses | Messages | Gemini | Completions
FORMATS: dict[str, Callable[[RunningProxy], Client]] = {
    "openai-responses": Responses,
    "anthropic": Messages,
    "gemini": Gemini,
    "openai-completions": Completions,
}
HELPERS = [("openai-responses", True), ("anthropic", True)]
STREAM_KINDS = [(name, False) for name in FORMATS] + HELPERS


@pytest.fixture(params=list(FORMATS))
def fmt(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def client_for(proxy: RunningProxy, fmt: str) -> Client:
    return FORMATS[fmt](proxy)


# -- streams ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "helper"), STREAM_KINDS)
def test_a_benign_answer_arrives_identical(proxy: RunningProxy, fmt: str, helper: bool) -> None:
    client = client_for(proxy, fmt)
    try:
        text, _ = client.stream({"reply": BENIGN, "chunk_chars": 4}, helper=helper)
    finally:
        client.close()
    assert text == BENIGN


@pytest.mark.parametrize(("fmt", "helper"), STREAM_KINDS)
@pytest.mark.parametrize("chunk_chars", range(1, 9))
def test_a_planted_key_raises_the_sdks_error_with_nothing_of_it_delivered(
    proxy: RunningProxy, fmt: str, helper: bool, chunk_chars: int
) -> None:
    client = client_for(proxy, fmt)
    events: list[Any] = []
    text = ""
    try:
        with pytest.raises(client.error) as caught:
            text, events = client.stream({"reply": LEAK, "chunk_chars": chunk_chars}, helper=helper)
    finally:
        client.close()
    assert RULE in str(caught.value)
    assert "AKIA" not in dumped(events) and "AKIA" not in text and "AKIA" not in str(caught.value)


def test_a_stream_byte_identical_to_the_direct_answer(proxy: RunningProxy, mock_model: MockModel, fmt: str) -> None:
    paths: dict[str, tuple[str, dict[str, Any]]] = {
        "openai-responses": ("/v1/responses", {"model": "m", "input": "hi"}),
        "anthropic": ("/v1/messages", {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}]}),
        "gemini": (
            "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
            {"contents": [{"parts": [{"text": "hi"}]}]},
        ),
        "openai-completions": ("/v1/completions", {"model": "m", "prompt": "hi"}),
    }
    path, request = paths[fmt]
    body: dict[str, Any] = {**request, "stream": True}
    headers = mock_headers({"reply": BENIGN})
    direct = httpx.post(mock_model.url + path, json=body, headers=headers).content
    assert httpx.post(proxy.url + path, json=body, headers=headers).content == direct


def test_an_address_is_redacted_in_place(proxy: RunningProxy, fmt: str) -> None:
    client = client_for(proxy, fmt)
    try:
        text, events = client.stream({"reply": "Write to jane.doe@example.com today.", "chunk_chars": 3})
    finally:
        client.close()
    assert text == "Write to [REDACTED:email] today."
    assert "jane" not in dumped(events)


@pytest.mark.parametrize(("fmt", "helper"), STREAM_KINDS)
def test_the_graceful_finish_ends_cleanly_with_the_filtered_reason(
    finishing_proxy: RunningProxy, fmt: str, helper: bool
) -> None:
    client = client_for(finishing_proxy, fmt)
    try:
        if fmt == "openai-responses" and helper:
            # The helper iterates cleanly; only get_final_response() insists on response.completed.
            text, events = client.stream({"reply": LEAK, "chunk_chars": 5}, helper=True)
        else:
            text, events = client.stream({"reply": LEAK, "chunk_chars": 5}, helper=helper)
    finally:
        client.close()
    assert text == BEFORE and "AKIA" not in dumped(events)
    assert client.finished_by_filter(events)


@pytest.mark.parametrize("fmt", ["openai-responses", "anthropic", "gemini"])  # legacy completions have no tools
def test_a_key_in_tool_arguments_is_blocked(proxy: RunningProxy, fmt: str) -> None:
    client = client_for(proxy, fmt)
    script = {"reply": "Calling the tool.", "tool_calls": [{"name": "deploy", "arguments": {"key": SECRET}}]}
    events: list[Any] = []
    try:
        with pytest.raises(client.error):
            _, events = client.stream({**script, "chunk_chars": 4})
    finally:
        client.close()
    assert "AKIA" not in dumped(events)


def test_a_blocked_prompt_is_a_400_that_never_reaches_the_model(
    proxy: RunningProxy, mock_model: MockModel, fmt: str
) -> None:
    client = client_for(proxy, fmt)
    try:
        with pytest.raises(client.bad_request) as caught:
            client.stream({"reply": BENIGN}, prompt=f"my key is {SECRET}")
    finally:
        client.close()
    assert "content_filter" in str(caught.value) or "blocked the request" in str(caught.value)
    assert "AKIA" not in str(caught.value)
    assert mock_model.requests() == []


# -- whole answers ------------------------------------------------------------------------------------


def test_a_whole_answer_is_moderated(proxy: RunningProxy, fmt: str) -> None:
    client = client_for(proxy, fmt)
    try:
        assert client.whole({"reply": BENIGN}) == BENIGN
        assert client.whole({"reply": "Mail jane.doe@example.com."}) == "Mail [REDACTED:email]."
        with pytest.raises(client.bad_request) as caught:
            client.whole({"reply": LEAK})
    finally:
        client.close()
    assert RULE in str(caught.value) and "AKIA" not in str(caught.value)


def test_a_whole_answer_with_the_graceful_finish_is_a_200_with_the_filtered_reason(
    finishing_proxy: RunningProxy, mock_model: MockModel, fmt: str
) -> None:
    paths: dict[str, tuple[str, dict[str, Any], Callable[[Any], Any]]] = {
        "openai-responses": (
            "/v1/responses",
            {"model": "m", "input": "hi"},
            lambda b: b["incomplete_details"]["reason"],
        ),
        "anthropic": (
            "/v1/messages",
            {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}]},
            lambda b: b["stop_reason"],
        ),
        "gemini": (
            "/v1beta/models/gemini-2.0-flash:generateContent",
            {"contents": [{"parts": [{"text": "hi"}]}]},
            lambda b: b["candidates"][0]["finishReason"],
        ),
        "openai-completions": (
            "/v1/completions",
            {"model": "m", "prompt": "hi"},
            lambda b: b["choices"][0]["finish_reason"],
        ),
    }
    path, body, reason = paths[fmt]
    answer = httpx.post(finishing_proxy.url + path, json=body, headers=mock_headers({"reply": LEAK}))
    assert answer.status_code == 200 and "AKIA" not in answer.text
    assert reason(answer.json()) in ("content_filter", "refusal", "SAFETY")


def test_a_gemini_stream_without_alt_sse_is_moderated_not_relayed_unread(proxy: RunningProxy) -> None:
    path = "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    clean = httpx.post(proxy.url + path, json=body, headers=mock_headers({"reply": "Write to jane.doe@example.com ok"}))
    assert "[REDACTED:email]" in clean.text and "jane" not in clean.text
    blocked = httpx.post(proxy.url + path, json=body, headers=mock_headers({"reply": LEAK}))
    assert blocked.status_code == 400 and "AKIA" not in blocked.text


# -- routes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/./messages", {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": SECRET}]}),
        ("/v1//messages/", {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": SECRET}]}),
        ("/v1/x/../responses", {"model": "m", "input": SECRET}),
        ("/openai/v1/responses", {"model": "m", "input": SECRET}),
        ("/api/v1/completions", {"model": "m", "prompt": SECRET}),
        ("/v1alpha/models/gemini-2.0-flash:generateContent", {"contents": [{"parts": [{"text": SECRET}]}]}),
        ("/v1beta/models/x/../gemini-2.0-flash:streamGenerateContent", {"contents": [{"parts": [{"text": SECRET}]}]}),
    ],
)
def test_each_formats_routes_are_moderated_under_path_variants(
    proxy: RunningProxy, mock_model: MockModel, path: str, body: dict[str, Any]
) -> None:
    answer = httpx.post(proxy.url + path, json=body)
    assert answer.status_code == 400 and "AKIA" not in answer.text
    assert mock_model.requests() == []


def received_while_the_upstream_holds(
    mock_model: MockModel, script: dict[str, Any], consume: Callable[[Callable[[str], None]], None]
) -> list[str]:
    """Run `consume` (an SDK client reading a stream, handing each piece of interest to the
    callback) while the mock holds the rest of the stream back (`script`'s `hold_after` and
    `hold_key`); the first piece must arrive before the hold is released. Returns every piece."""
    seen: list[str] = []
    first = threading.Event()

    def receive(piece: str) -> None:
        seen.append(piece)
        first.set()

    thread = threading.Thread(target=consume, args=(receive,))
    thread.start()
    try:
        assert first.wait(timeout=10)  # the upstream is holding the rest back
    finally:
        mock_model.release(script["hold_key"])
        thread.join(timeout=10)
    return seen


def claude_deltas_while_the_upstream_holds(
    proxy: RunningProxy, mock_model: MockModel, script: dict[str, Any], delta_type: str, field: str
) -> str:
    """What the official anthropic SDK reads of the `field` of each delta of `delta_type`, the
    first of them while the mock still holds the rest of the stream back."""
    client = anthropic.Anthropic(base_url=proxy.url, api_key="sk-ant-test", max_retries=0)

    def consume(receive: Callable[[str], None]) -> None:
        messages: list[anthropic.types.MessageParam] = [{"role": "user", "content": "weather?"}]
        with client.messages.stream(
            model="m", max_tokens=50, messages=messages, extra_headers=mock_headers(script)
        ) as stream:
            for event in stream:
                if event.type == "content_block_delta" and event.delta.type == delta_type:
                    receive(getattr(event.delta, field))

    with client:
        return "".join(received_while_the_upstream_holds(mock_model, script, consume))


def test_claudes_answer_after_its_thinking_streams_while_the_upstream_is_still_writing(
    proxy: RunningProxy, mock_model: MockModel
) -> None:
    # The thinking block ends in a word that could still grow into an address; the answer after
    # it must reach the client as it is written, not when the message ends.
    script = {
        "thinking": "The user wants the weather.",
        "reply": "Sunny and warm today, all afternoon.",
        "chunk_chars": 8,
        "hold_after": 12,
        "hold_key": "thinking-then-answer",
    }
    seen = claude_deltas_while_the_upstream_holds(proxy, mock_model, script, "text_delta", "text")
    assert seen == "Sunny and warm today, all afternoon."


def test_a_responses_stream_with_obfuscation_pads_streams_while_the_upstream_is_still_writing(
    proxy: RunningProxy, mock_model: MockModel
) -> None:
    # OpenAI pads every delta by default; the pads must not hold the answer back.
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-test", max_retries=0)
    script = {"reply": "Sunny and warm today, all afternoon.", "chunk_chars": 6, "hold_after": 6, "hold_key": "pads"}

    def consume(receive: Callable[[str], None]) -> None:
        stream = client.responses.create(
            model="m",
            input="weather?",
            stream=True,
            extra_body={"stream_options": {"include_obfuscation": True}},
            extra_headers=mock_headers(script),
        )
        for event in stream:
            if event.type == "response.output_text.delta":
                receive(event.delta)

    with client:
        seen = received_while_the_upstream_holds(mock_model, script, consume)
    assert "".join(seen) == "Sunny and warm today, all afternoon."


def test_a_responses_function_calls_arguments_stream_while_the_upstream_is_still_writing(
    proxy: RunningProxy, mock_model: MockModel
) -> None:
    # The call's name comes whole in output_item.added; the arguments after it must reach the
    # client as they are written, not when the item is done.
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-test", max_retries=0)
    arguments = '{"city": "Paris", "unit": "celsius"}'
    call = {"name": "get_weather", "arguments": arguments}
    script = {"reply": "", "tool_calls": [call], "chunk_chars": 6, "hold_after": 6, "hold_key": "call"}

    def consume(receive: Callable[[str], None]) -> None:
        stream = client.responses.create(model="m", input="weather?", stream=True, extra_headers=mock_headers(script))
        for event in stream:
            if event.type == "response.function_call_arguments.delta":
                receive(event.delta)

    with client:
        seen = received_while_the_upstream_holds(mock_model, script, consume)
    assert "".join(seen) == arguments


def test_claudes_tool_input_streams_while_the_upstream_is_still_writing(
    proxy: RunningProxy, mock_model: MockModel
) -> None:
    arguments = '{"city": "Paris", "unit": "celsius"}'
    calls = [{"name": "get_weather", "arguments": arguments}]
    script = {"reply": "", "tool_calls": calls, "chunk_chars": 6, "hold_after": 5, "hold_key": "tool"}
    seen = claude_deltas_while_the_upstream_holds(proxy, mock_model, script, "input_json_delta", "partial_json")
    assert seen == arguments


def test_a_chat_tool_calls_arguments_stream_while_the_upstream_is_still_writing(
    proxy: RunningProxy, mock_model: MockModel
) -> None:
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-test", max_retries=0)
    arguments = '{"city": "Paris", "unit": "celsius"}'
    calls = [{"name": "get_weather", "arguments": arguments}]
    script = {"reply": "", "tool_calls": calls, "chunk_chars": 6, "hold_after": 4, "hold_key": "chat-call"}

    def consume(receive: Callable[[str], None]) -> None:
        messages: list[Any] = [{"role": "user", "content": "weather?"}]
        stream = client.chat.completions.create(
            model="m", messages=messages, stream=True, extra_headers=mock_headers(script)
        )
        for chunk in stream:
            for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                if call.function and call.function.arguments:
                    receive(call.function.arguments)

    with client:
        seen = received_while_the_upstream_holds(mock_model, script, consume)
    assert "".join(seen) == arguments
