"""End to end: the official `openai` SDK -> guardstream under uvicorn -> the mock model, on 127.0.0.1."""

from __future__ import annotations

import contextlib
import gc
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from guardstream import Config, ConfigError, ModerationSettings, create_app
from guardstream.bench.processes import free_port, server_process
from guardstream.config import Upstreams
from guardstream.servers import serve_in_thread
from tests.conftest import MockModel, ProxyFactory, RunningProxy, mock_headers

pytestmark = pytest.mark.anyio

SECRET = "AKIA4HJQ7XRZ2PLWKD5N"
BEFORE_SECRET = "Sure, here is the deploy key: "
MESSAGES: list[Any] = [{"role": "user", "content": "Tell me something."}]


_clients: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def client(proxy: RunningProxy) -> openai.OpenAI:
    sdk = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-test", max_retries=0)
    _clients.append(sdk)
    return sdk


def stream_text(proxy: RunningProxy, mock: dict[str, Any], **kwargs: Any) -> tuple[str, list[Any]]:
    """Collect streamed content as the SDK yields it; returns (text, chunks)."""
    chunks = []
    stream = client(proxy).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers=mock_headers(mock), **kwargs
    )
    for chunk in stream:
        chunks.append(chunk)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


def test_benign_stream_arrives_byte_identical_to_the_direct_answer(proxy: RunningProxy, mock_model: MockModel) -> None:
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True, "mock": {"reply": "A calm, harmless answer."}}
    direct = httpx.post(f"{mock_model.url}/v1/chat/completions", json=body).content
    proxied = httpx.post(f"{proxy.url}/v1/chat/completions", json=body).content
    assert proxied == direct
    text, _ = stream_text(proxy, {"reply": "A calm, harmless answer."})
    assert text == "A calm, harmless answer."


def test_secret_in_stream_raises_api_error_naming_the_rule(proxy: RunningProxy) -> None:
    received: list[str] = []
    stream = client(proxy).chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        extra_headers=mock_headers({"reply": f"{BEFORE_SECRET}{SECRET} and more text", "chunk_chars": 3}),
    )
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert not isinstance(caught.value, openai.APIConnectionError)
    assert caught.value.code == "content_filter"
    assert "rule secrets.aws-access-key-id (credential)" in caught.value.message
    text = "".join(received)
    assert text == BEFORE_SECRET
    assert not any(part in text for part in ("AKIA", "4HJQ"))
    assert proxy.metric("guardstream_requests_total", provider="openai-chat", outcome="blocked_output") == 1


@pytest.mark.parametrize("chunk_chars", [1, 2, 5, 64])
def test_no_character_of_a_secret_leaks_whatever_the_chunk_size(proxy: RunningProxy, chunk_chars: int) -> None:
    received: list[str] = []
    stream = client(proxy).chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        extra_headers=mock_headers({"reply": f"key={SECRET}!", "chunk_chars": chunk_chars}),
    )
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "key="


def test_pii_is_redacted_in_place(proxy: RunningProxy) -> None:
    text, _ = stream_text(proxy, {"reply": "Write to jane.doe@example.com today.", "chunk_chars": 3})
    assert text == "Write to [REDACTED:email] today."
    assert proxy.metric("guardstream_requests_total", provider="openai-chat", outcome="redacted") == 1
    assert (
        proxy.metric(
            "guardstream_violations_total", rule="pii.email", category="pii", action="redact", direction="output"
        )
        == 1
    )


def test_blocked_prompt_is_answered_400_without_calling_the_upstream(
    proxy: RunningProxy, mock_model: MockModel
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(proxy).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"my key is {SECRET}"}], stream=True
        )
    assert caught.value.code == "content_filter"
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert "secrets.aws-access-key-id" in caught.value.message
    assert mock_model.requests() == []


def test_blocked_prompt_in_content_parts_is_found(proxy: RunningProxy, mock_model: MockModel) -> None:
    messages: Any = [{"role": "user", "content": [{"type": "text", "text": f"key {SECRET}"}]}]
    with pytest.raises(openai.BadRequestError):
        client(proxy).chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert mock_model.requests() == []


def test_secret_in_tool_call_arguments_is_blocked(proxy: RunningProxy) -> None:
    tool_call = {"name": "deploy", "arguments": f'{{"aws_key": "{SECRET}"}}'}
    stream = client(proxy).chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        extra_headers=mock_headers({"reply": "Calling the tool.", "tool_calls": [tool_call], "chunk_chars": 4}),
    )
    arguments = ""
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                arguments += (call.function.arguments or "") if call.function else ""
    assert "secrets.aws-access-key-id" in caught.value.message
    assert "AKIA" not in arguments


def test_on_violation_finish_ends_with_content_filter(start_proxy: ProxyFactory, mock_model: MockModel) -> None:
    with start_proxy(on_violation="finish") as proxy:
        text, chunks = stream_text(proxy, {"reply": f"{BEFORE_SECRET}{SECRET}", "chunk_chars": 4})
    assert text == BEFORE_SECRET
    assert chunks[-1].choices[0].finish_reason == "content_filter"


def test_stream_is_delivered_before_the_upstream_finishes(proxy: RunningProxy, mock_model: MockModel) -> None:
    first_chunks = threading.Event()
    seen: list[str] = []

    def consume() -> None:
        stream = client(proxy).chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            extra_headers=mock_headers(
                {"reply": "early words, then later words", "hold_after": 4, "hold_key": "incremental"}
            ),
        )
        for chunk in stream:
            seen.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
            if "".join(seen).startswith("early"):
                first_chunks.set()

    thread = threading.Thread(target=consume)
    thread.start()
    try:
        # The upstream is holding its stream open: the client must already have the first words.
        assert first_chunks.wait(timeout=10)
    finally:
        mock_model.release("incremental")
        thread.join(timeout=10)
    assert "".join(seen) == "early words, then later words"


async def test_async_client_sees_the_same_block(proxy: RunningProxy) -> None:
    aclient = openai.AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key="sk-test", max_retries=0)
    received = []
    stream = await aclient.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        extra_headers=mock_headers({"reply": f"{BEFORE_SECRET}{SECRET}", "chunk_chars": 5}),
    )
    with pytest.raises(openai.APIError) as caught:
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert caught.value.code == "content_filter"
    assert "".join(received) == BEFORE_SECRET
    await aclient.close()


def test_azure_deployment_path_is_moderated(proxy: RunningProxy) -> None:
    azure = openai.AzureOpenAI(
        azure_endpoint=proxy.url, api_key="test", api_version="2024-06-01", azure_deployment="gpt", max_retries=0
    )
    stream = azure.chat.completions.create(
        model="gpt", messages=MESSAGES, stream=True, extra_headers=mock_headers({"reply": f"x {SECRET}"})
    )
    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            pass
    azure.close()
    assert caught.value.code == "content_filter"


def test_multiple_choices_are_moderated_separately(proxy: RunningProxy) -> None:
    _, chunks = stream_text(proxy, {"replies": ["one a@b.io", "two plain"], "chunk_chars": 3}, n=2)
    texts = {0: "", 1: ""}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts == {0: "one [REDACTED:email]", 1: "two plain"}


def test_usage_chunk_still_arrives(proxy: RunningProxy) -> None:
    _, chunks = stream_text(proxy, {"reply": "short"}, stream_options={"include_usage": True})
    assert chunks[-1].usage is not None and chunks[-1].choices == []


def test_padded_chunks_pass_untouched_and_a_secret_between_them_is_still_cut(
    proxy: RunningProxy, mock_model: MockModel
) -> None:
    # OpenAI pads every chunk with random characters (`obfuscation`, on by default in the real
    # API); a padded stream leaves as it came, pads and all, and its text is moderated as ever.
    body = {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_obfuscation": True},
        "mock": {"reply": "A calm, harmless answer that goes on for a while.", "chunk_chars": 3},
    }
    direct = httpx.post(f"{mock_model.url}/v1/chat/completions", json=body).content
    assert direct.count(b'"obfuscation"') > 10
    assert httpx.post(f"{proxy.url}/v1/chat/completions", json=body).content == direct
    received: list[str] = []
    stream = client(proxy).chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_obfuscation": True},
        extra_headers=mock_headers({"reply": f"{BEFORE_SECRET}{SECRET} and more text", "chunk_chars": 3}),
    )
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert caught.value.code == "content_filter"
    assert "".join(received) == BEFORE_SECRET


def test_non_streaming_answer_with_secret_is_a_400(proxy: RunningProxy) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(proxy).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers=mock_headers({"reply": f"key {SECRET}"})
        )
    assert caught.value.code == "content_filter"


def test_non_streaming_answer_is_redacted(proxy: RunningProxy) -> None:
    completion = client(proxy).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers=mock_headers({"reply": "mail jane.doe@example.com"})
    )
    assert completion.choices[0].message.content == "mail [REDACTED:email]"


def test_request_headers_reach_the_upstream_and_hop_by_hop_do_not(proxy: RunningProxy, mock_model: MockModel) -> None:
    httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json={"model": "m", "messages": MESSAGES},
        headers={"authorization": "Bearer sk-abc", "x-custom": "1", "connection": "keep-alive, x-drop", "x-drop": "1"},
    )
    seen = mock_model.requests()[-1]["headers"]
    assert seen["authorization"] == "Bearer sk-abc"
    assert seen["x-custom"] == "1"
    assert "x-drop" not in seen


def test_sse_answers_are_not_buffered_by_intermediaries(proxy: RunningProxy) -> None:
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", f"{proxy.url}/v1/chat/completions", json=body) as response:
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-accel-buffering"] == "no"
        assert response.headers["content-type"].startswith("text/event-stream")


def test_other_paths_are_forwarded_untouched(proxy: RunningProxy, mock_model: MockModel) -> None:
    models = client(proxy).models.list()
    assert [m.id for m in models.data]
    assert mock_model.requests()[-1]["path"] == "/v1/models"


def test_upstream_error_status_passes_through(proxy: RunningProxy) -> None:
    with pytest.raises(openai.RateLimitError):
        client(proxy).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers=mock_headers({"status": 429})
        )


def test_unreachable_upstream_is_a_502_in_openai_format(start_proxy: ProxyFactory) -> None:
    with start_proxy(upstream="http://127.0.0.1:9") as proxy:
        with pytest.raises(openai.InternalServerError) as caught:
            client(proxy).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        assert caught.value.status_code == 502
        assert proxy.metric("guardstream_upstream_errors_total", provider="openai-chat", reason="connect") == 1


def test_upstream_dropping_mid_stream_gives_a_clean_api_error(proxy: RunningProxy) -> None:
    stream = client(proxy).chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        extra_headers=mock_headers({"reply": "a b c d e f", "drop_after": 3}),
    )
    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            pass
    assert not isinstance(caught.value, openai.APIConnectionError)
    assert "broke off" in caught.value.message


def test_malformed_upstream_event_fails_closed(proxy: RunningProxy) -> None:
    stream = client(proxy).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers=mock_headers({"malformed_after": 2})
    )
    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            pass
    assert "malformed" in caught.value.message


@pytest.mark.parametrize("fault", [{"malformed_after": 2}, {"raw_events": ['data: {"choices":[]}\n\n']}])
def test_an_unreadable_or_unfinished_stream_counts_as_malformed(proxy: RunningProxy, fault: dict[str, Any]) -> None:
    stream = client(proxy).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers=mock_headers(fault)
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
    assert proxy.metric("guardstream_upstream_errors_total", provider="openai-chat", reason="malformed") == 1


def test_metrics_are_served(proxy: RunningProxy) -> None:
    stream_text(proxy, {"reply": "hello"})
    assert proxy.metric("guardstream_requests_total", provider="openai-chat", outcome="passed") == 1
    text = httpx.get(f"{proxy.url}/metrics").text
    assert 'guardstream_requests_total{outcome="passed",provider="openai-chat"} 1.0' in text
    assert "guardstream_release_delay_seconds_bucket" in text


def test_client_disconnect_closes_the_upstream_and_is_counted(proxy: RunningProxy, mock_model: MockModel) -> None:
    body = {
        "model": "m",
        "messages": MESSAGES,
        "stream": True,
        "mock": {"reply": "words that never finish", "hold_after": 3, "hold_key": "gone"},
    }
    with httpx.stream("POST", f"{proxy.url}/v1/chat/completions", json=body) as response:
        next(response.iter_raw())
    deadline = time.monotonic() + 10
    while proxy.metric("guardstream_requests_total", provider="openai-chat", outcome="client_closed") < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert proxy.registry.get_sample_value("guardstream_active_streams", {"provider": "openai-chat"}) == 0
    mock_model.release("gone")


def test_upstream_slower_than_the_timeout_is_a_504(start_proxy: ProxyFactory, mock_model: MockModel) -> None:
    with start_proxy(timeout=0.3) as proxy:
        with pytest.raises(openai.APIStatusError) as caught:
            client(proxy).chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                stream=True,
                extra_headers=mock_headers({"first_byte_delay_ms": 1500}),
            )
        assert caught.value.status_code == 504
        assert proxy.metric("guardstream_upstream_errors_total", provider="openai-chat", reason="timeout") == 1


def test_input_redact_rules_rewrite_the_request_before_it_leaves(
    start_proxy: ProxyFactory, mock_model: MockModel, tmp_path: Path
) -> None:
    pack = tmp_path / "input.toml"
    pack.write_text(
        '[pack]\nname = "in"\n[[rule]]\nid = "in.codename"\ncategory = "confidential"\n'
        'pattern = "NIGHTJAR"\naction = "redact"\nscope = "input"\nreplacement = "[codename]"\n',
        encoding="utf-8",
    )
    with start_proxy(packs=(str(pack),)) as proxy:
        messages: Any = [{"role": "user", "content": [{"type": "text", "text": "status of NIGHTJAR?"}]}]
        client(proxy).chat.completions.create(model="gpt-4o-mini", messages=messages)
        assert (
            proxy.metric(
                "guardstream_violations_total",
                rule="in.codename",
                category="confidential",
                action="redact",
                direction="input",
            )
            == 1
        )
    sent = mock_model.requests()[-1]["body"]["messages"][0]["content"][0]["text"]
    assert sent == "status of [codename]?"


def test_pii_in_tool_call_arguments_is_redacted(proxy: RunningProxy) -> None:
    tool_call = {"name": "notify", "arguments": '{"to": "jane.doe@example.com"}'}
    _, chunks = stream_text(proxy, {"reply": "ok", "tool_calls": [tool_call], "chunk_chars": 5})
    arguments = "".join(
        call.function.arguments or ""
        for chunk in chunks
        if chunk.choices
        for call in chunk.choices[0].delta.tool_calls or []
        if call.function
    )
    assert arguments == '{"to": "[REDACTED:email]"}'


def test_refusal_text_is_moderated_too(proxy: RunningProxy) -> None:
    _, chunks = stream_text(proxy, {"refusal": "I can't share jane.doe@example.com", "chunk_chars": 4})
    refusal = "".join(c.choices[0].delta.refusal or "" for c in chunks if c.choices)
    assert refusal == "I can't share [REDACTED:email]"


def test_secret_in_tool_call_arguments_of_the_history_is_blocked(proxy: RunningProxy, mock_model: MockModel) -> None:
    messages: Any = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": f'{{"k": "{SECRET}"}}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
    ]
    with pytest.raises(openai.BadRequestError):
        client(proxy).chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
    assert mock_model.requests() == []


def test_answers_carry_one_date_header(proxy: RunningProxy) -> None:
    response = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert len(response.headers.get_list("date")) == 1
    blocked = httpx.post(
        f"{proxy.url}/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": SECRET}]}
    )
    assert len(blocked.headers.get_list("date")) == 1


def test_a_holdback_cap_below_a_rules_own_matches_is_refused() -> None:
    with pytest.raises(ConfigError, match="max_holdback_chars = 10 is shorter than matches of rule pii.email"):
        create_app(Config(moderation=ModerationSettings(max_holdback_chars=10)))


def _messages_holding(text: str) -> int:
    """Lists of messages (as a parsed request holds them) with a message of `text`. The messages
    themselves, dicts of strings, are not tracked by the garbage collector; their lists are."""
    gc.collect()
    return sum(
        1
        for o in gc.get_objects()
        if isinstance(o, list) and any(isinstance(m, dict) and m.get("content") == text for m in o)
    )


def test_the_parsed_request_is_let_go_while_the_answer_streams(start_proxy: ProxyFactory) -> None:
    # A long conversation is many times its JSON's size as Python objects: a stream that lasts
    # minutes must not keep it. The mock runs in a process of its own, so every parsed copy of
    # the request in this process is guardstream's.
    port = free_port()
    marker = "a question asked once, " + "x" * 50
    with server_process(["-m", "guardstream", "mock", "--port", str(port)], port, "tcp"):
        upstream = f"http://127.0.0.1:{port}"
        with start_proxy(upstream=upstream) as proxy:
            first = threading.Event()
            seen: list[str] = []

            # Sent as bytes: the client holds no parsed copy of its own.
            body = json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": marker}]})
            script = {"reply": "one two three four", "hold_after": 3, "hold_key": "parsed"}

            def consume() -> None:
                url = f"{proxy.url}/v1/chat/completions"
                headers = {"content-type": "application/json", **mock_headers(script)}
                with httpx.stream("POST", url, content=body.encode(), headers=headers, timeout=10) as answer:
                    for line in answer.iter_lines():
                        if line.startswith("data: {"):
                            delta = json.loads(line[6:])["choices"][0]["delta"]
                            seen.append(delta.get("content") or "")
                            first.set()

            thread = threading.Thread(target=consume)
            thread.start()
            try:
                assert first.wait(timeout=10)
                during = _messages_holding(marker)
            finally:
                with contextlib.suppress(httpx.HTTPError):  # never hide the failure that got us here
                    httpx.post(f"{upstream}/_mock/release/parsed")
                thread.join(timeout=10)
    assert "".join(seen) == "one two three four"
    assert during == 0


def test_moderated_requests_go_out_without_an_httpx_read_timeout(mock_model: MockModel) -> None:
    # Their silences are timed by guardstream (the relay's watchdog, `_read_answer`): a read
    # timeout in httpx would arm and cancel a timer on every read of every stream.
    app = create_app(Config(upstreams=Upstreams(mock_model.url, mock_model.url, mock_model.url)))
    timeouts: list[dict[str, Any]] = []

    async def record(request: httpx.Request) -> None:
        timeouts.append(dict(request.extensions["timeout"]))

    app.client.event_hooks["request"].append(record)
    with serve_in_thread(app) as url:
        text, _ = stream_text(RunningProxy(url, app.registry), {"reply": "Fine."})
    assert text == "Fine."
    assert timeouts and timeouts[0]["read"] is None and timeouts[0]["connect"] is not None
