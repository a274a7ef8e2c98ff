"""Upstream connections: a finished stream hands its connection to the next request, as any
HTTP client would; a stream guardstream ends early closes it, so the model stops generating.

The mock logs each request's peer (address and port): two requests with one peer came on one
connection.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import MockModel, RunningProxy, mock_headers

MESSAGES: list[Any] = [{"role": "user", "content": "Tell me something."}]
SECRET = "AKIA4HJQ7XRZ2PLWKD5N"
# Events a few milliseconds apart, as a model writes them: the end of the body then comes in a
# read of its own, after the end event.
ANSWER = {"reply": "A calm, harmless answer.", "delay_ms": 10}


@pytest.fixture
def sdk(proxy: RunningProxy) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-test", max_retries=0)
    yield client
    client.close()


def chat_stream(sdk: openai.OpenAI, script: dict[str, Any]) -> str:
    stream = sdk.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers=mock_headers(script)
    )
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def peers(mock_model: MockModel) -> list[str]:
    return [request["peer"] for request in mock_model.requests()]


def test_streams_one_after_another_share_one_upstream_connection(sdk: openai.OpenAI, mock_model: MockModel) -> None:
    for _ in range(3):
        assert chat_stream(sdk, ANSWER) == "A calm, harmless answer."
    first, *rest = peers(mock_model)
    assert rest == [first, first]


def test_claude_streams_one_after_another_share_one_upstream_connection(
    proxy: RunningProxy, mock_model: MockModel
) -> None:
    with anthropic.Anthropic(base_url=proxy.url, api_key="sk-ant-test", max_retries=0) as client:
        for _ in range(2):
            with client.messages.stream(
                model="claude-sonnet-4-5",
                max_tokens=64,
                messages=MESSAGES,
                extra_headers=mock_headers(ANSWER),
            ) as stream:
                assert "".join(stream.text_stream) == "A calm, harmless answer."
    first, second = peers(mock_model)
    assert second == first


def test_a_blocked_stream_closes_its_upstream_connection(sdk: openai.OpenAI, mock_model: MockModel) -> None:
    with pytest.raises(openai.APIError):
        chat_stream(sdk, {"reply": f"The key is {SECRET} and then a long tail. " * 20, "chunk_chars": 8})
    chat_stream(sdk, ANSWER)
    blocked, after = peers(mock_model)
    assert after != blocked


def test_an_upstream_that_goes_on_after_the_end_is_cut_off_without_the_client_waiting(
    proxy: RunningProxy, mock_model: MockModel
) -> None:
    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    text = {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Done."}}]}
    events = [f"data: {json.dumps(text)}\n\n", "data: [DONE]\n\n", "data: [DONE]\n\n"]
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    script = {"raw_events": events, "hold_after": 2, "hold_key": "after-the-end"}
    started = time.monotonic()
    with httpx.stream("POST", f"{proxy.url}/v1/chat/completions", json=body, headers=mock_headers(script)) as answer:
        received = answer.read().decode()
    took = time.monotonic() - started
    time.sleep(1.0)  # guardstream gives up on the rest by now (after half a second)
    mock_model.release("after-the-end")
    assert received.count("[DONE]") == 1
    assert took < 10.0  # the mock holds the rest for 30 s: the client did not wait for it
    with httpx.Client() as client:
        client.post(f"{proxy.url}/v1/chat/completions", json=body, headers=mock_headers({"reply": "Hi."}))
    held, after = peers(mock_model)
    assert after != held
