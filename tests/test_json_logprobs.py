"""Logprobs in whole (non-streamed) answers agree with what was released: a choice or an output
whose text was redacted or cut keeps none, as streams already do. End to end: raw httpx ->
guardstream -> the mock model, which answers with logprobs that spell its reply."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import MockModel, ProxyFactory, RunningProxy, mock_headers
from tests.test_proxy_leaks import SECRET

ADDRESS = "jane.doe@example.com"


def chat(proxy: RunningProxy, reply: str) -> Any:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "logprobs": True, "top_logprobs": 1}
    answer = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers=mock_headers({"reply": reply}))
    return answer.json()


def responses(proxy: RunningProxy, reply: str) -> Any:
    body = {"model": "m", "input": "hi", "include": ["message.output_text.logprobs"]}
    answer = httpx.post(f"{proxy.url}/v1/responses", json=body, headers=mock_headers({"reply": reply}))
    return answer.json()


def output_texts(body: Any) -> list[dict[str, Any]]:
    return [part for item in body["output"] for part in item.get("content") or [] if part["type"] == "output_text"]


def test_an_untouched_chat_answer_keeps_its_logprobs(proxy: RunningProxy) -> None:
    choice = chat(proxy, "write to me today")["choices"][0]
    assert "".join(entry["token"] for entry in choice["logprobs"]["content"]) == "write to me today"


def test_a_redacted_chat_answer_keeps_no_logprobs(proxy: RunningProxy) -> None:
    choice = chat(proxy, f"write to {ADDRESS} today")["choices"][0]
    assert choice["message"]["content"] == "write to [REDACTED:email] today"
    assert choice["logprobs"] is None


def test_a_redacted_responses_output_keeps_no_logprobs(proxy: RunningProxy) -> None:
    (text,) = output_texts(responses(proxy, f"write to {ADDRESS} today"))
    assert text["text"] == "write to [REDACTED:email] today" and text["logprobs"] == []


@pytest.fixture
def finishing_proxy(start_proxy: ProxyFactory, mock_model: MockModel) -> Any:
    with start_proxy(on_violation="finish") as running:
        yield running


def test_a_chat_answer_cut_at_a_key_keeps_no_logprobs(finishing_proxy: RunningProxy) -> None:
    choice = chat(finishing_proxy, f"use the key {SECRET} in prod")["choices"][0]
    assert choice["finish_reason"] == "content_filter" and choice["logprobs"] is None
    assert SECRET[:4] not in str(choice)


def test_a_responses_output_cut_at_a_key_keeps_no_logprobs(finishing_proxy: RunningProxy) -> None:
    body = responses(finishing_proxy, f"use the key {SECRET} in prod")
    (text,) = output_texts(body)
    assert text["logprobs"] == [] and SECRET[:4] not in str(body)
