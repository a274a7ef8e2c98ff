"""OpenAI Chat codec: every field is moderated, copies agree, channels are what clients read (#6)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from guardstream.packs import load_rules
from guardstream.providers.openai_chat import OPENAI_CHAT, OpenAIChatStream
from guardstream.sse import SSEDecoder
from guardstream.stream import MALFORMED_MESSAGE, StreamModerator

RULES = load_rules(["secrets", "pii"]).for_direction("output")
SECRET = "AKIA4HJQ7XRZ2PLWKD5N"
DONE = b"data: [DONE]\n\n"


def event(choice: dict[str, Any] | None = None, **top: Any) -> bytes:
    payload: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    payload["choices"] = [] if choice is None else [{"index": 0, "finish_reason": None, **choice}]
    payload.update(top)
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def run(*chunks: bytes) -> bytes:
    moderator = StreamModerator(OpenAIChatStream(), RULES)
    return b"".join(moderator.feed(c) for c in chunks) + moderator.finish()


def payloads(out: bytes) -> list[dict[str, Any]]:
    return [json.loads(e.data) for e in SSEDecoder().decode(out) if e.has_data and e.data != "[DONE]"]


@pytest.mark.parametrize(
    "delta",
    [
        {"reasoning_content": f"the key is {SECRET}"},
        {"reasoning": f"the key is {SECRET}"},
        {"function_call": {"name": "f", "arguments": f'{{"k": "{SECRET}"}}'}},
        {"audio": {"id": "a1", "transcript": f"say {SECRET}"}},
        {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": SECRET}}]},
        {"tool_calls": [{"index": 0, "id": f"call_{SECRET}", "type": "function", "function": {"name": "f"}}]},
        {"annotations": [{"type": "url_citation", "url_citation": {"url": f"https://x.io/?k={SECRET}", "title": "t"}}]},
        {"annotations": [{"type": "url_citation", "url_citation": {"url": "https://x.io", "title": SECRET}}]},
        {"content": [{"type": "text", "text": f"key {SECRET}"}]},
        {"brand_new_field": {"deep": [f"key {SECRET}"]}},
        {SECRET: "as a key"},
    ],
)
def test_every_field_of_a_delta_is_moderated(delta: dict[str, Any]) -> None:
    # test for #6 (1): fields never read
    out = run(event({"delta": delta}), DONE)
    assert SECRET.encode() not in out
    assert payloads(out)[-1]["error"]["code"] == "content_filter"


@pytest.mark.parametrize(
    "chunk",
    [
        event({"text": f"legacy {SECRET}"}),
        event({"message": {"role": "assistant", "content": f"snapshot {SECRET}"}}),
        event(None, extra={"note": f"top-level {SECRET}"}),
        event({"delta": {"content": "hi"}}, model=f"m-{SECRET}"),
    ],
)
def test_legacy_snapshot_top_level_and_structural_strings_are_moderated(chunk: bytes) -> None:
    out = run(chunk, DONE)
    assert SECRET.encode() not in out


def test_a_key_split_over_alternating_indices_is_caught_on_the_position_view() -> None:
    # test for #6 (4): the README's client reads choices[0] whatever its index says.
    out = run(
        event({"delta": {"content": "key AKIA4HJQ"}, "index": 0}),
        event({"delta": {"content": "7XRZ2PLWKD5N"}, "index": 1}),
        DONE,
    )
    assert b"AKIA" not in out and payloads(out)[-1]["error"]["code"] == "content_filter"


def test_two_choices_in_one_chunk_are_read_in_a_row_too() -> None:
    chunk = event(
        None,
        choices=[{"index": 0, "delta": {"content": "AKIA4HJQ"}}, {"index": 1, "delta": {"content": "7XRZ2PLWKD5N "}}],
    )
    out = run(chunk, DONE)
    assert b"AKIA" not in out


def logprobs(*tokens: str) -> dict[str, Any]:
    return {"content": [{"token": t, "logprob": -0.1, "bytes": list(t.encode()), "top_logprobs": []} for t in tokens]}


def test_logprobs_that_spell_the_text_pass_untouched() -> None:
    chunk = event({"delta": {"content": "Hello world"}, "logprobs": logprobs("Hello", " world")})
    assert run(chunk, DONE) == chunk + DONE


def test_logprobs_of_a_redacted_event_are_dropped() -> None:
    # test for #6 (2)
    chunk = event(
        {"delta": {"content": "mail jane.doe@example.com ok"}, "logprobs": logprobs("mail jane.doe@example.com ok")}
    )
    out = run(chunk, DONE)
    assert b"jane" not in out
    assert payloads(out)[0]["choices"][0]["logprobs"] is None


def test_logprobs_of_the_released_head_of_a_blocked_event_are_dropped() -> None:
    chunk = event({"delta": {"content": f"safe start {SECRET}"}, "logprobs": logprobs("safe start ", *SECRET)})
    out = run(chunk, DONE)
    assert b"AKIA" not in out
    head, error = payloads(out)
    assert head["choices"][0]["delta"]["content"] == "safe start " and head["choices"][0]["logprobs"] is None
    assert error["error"]["code"] == "content_filter"


def test_logprobs_that_do_not_spell_the_text_are_dropped() -> None:
    chunk = event({"delta": {"content": ""}, "logprobs": logprobs(*SECRET)})
    out = run(chunk, DONE)
    assert b"AKIA" not in out and b"65, 75" not in out.replace(b",", b", ")
    assert payloads(out)[0]["choices"][0]["logprobs"] is None


def test_bytes_that_disagree_with_their_token_drop_the_logprobs() -> None:
    entry = {"token": "hi", "logprob": -1, "bytes": list(SECRET.encode()), "top_logprobs": []}
    out = run(event({"delta": {"content": "hi"}, "logprobs": {"content": [entry]}}), DONE)
    assert payloads(out)[0]["choices"][0]["logprobs"] is None


def test_alternatives_in_top_logprobs_are_text_too() -> None:
    entry = {"token": "hi", "logprob": -1, "bytes": [104, 105], "top_logprobs": [{"token": SECRET, "logprob": -9}]}
    out = run(event({"delta": {"content": "hi"}, "logprobs": {"content": [entry]}}), DONE)
    assert SECRET.encode() not in out


def test_error_events_are_moderated_before_the_sdk_shows_them() -> None:
    # test for #6 (6)
    out = run(b'data: {"error": {"message": "tool_use_failed: ' + SECRET.encode() + b'", "type": "x"}}\n\n')
    assert SECRET.encode() not in out
    assert payloads(out)[-1]["error"]["code"] == "content_filter"


def test_data_less_blocks_are_never_relayed() -> None:
    # test for #6 (5): comments, ids and data-less events reach the client only as our own keep-alive.
    out = run(
        b": " + SECRET.encode() + b"\n\nid: " + SECRET.encode() + b"\n\nevent: x\n\n",
        event({"delta": {"content": "ok"}}),
        DONE,
    )
    assert SECRET.encode() not in out
    assert out.startswith(b": keep-alive\n\n")


def test_nothing_after_done_is_read() -> None:
    out = run(event({"delta": {"content": "ok"}}), DONE + event({"delta": {"content": SECRET}}))
    assert SECRET.encode() not in out and out.endswith(DONE)


def test_duplicate_keys_fail_closed() -> None:
    out = run(
        b'data: {"choices": [{"index": 0, "delta": {"content": "' + SECRET.encode() + b'", "content": "hi"}}]}\n\n'
    )
    assert SECRET.encode() not in out
    assert payloads(out)[-1]["error"]["code"] == "upstream_error"


def test_a_stream_without_its_terminator_drops_held_text_and_ends_with_an_error() -> None:
    # test for #6 (7): the held start of a key used to be released as final at the end.
    out = run(event({"delta": {"content": "key AKIA4HJQ7XRZ2PLWKD5"}}))
    assert b"AKIA" not in out
    assert "without finishing" in payloads(out)[-1]["error"]["message"]


def test_a_last_block_without_its_blank_line_is_still_read() -> None:
    out = run(event({"delta": {"content": "ok"}}), b"data: [DONE]")
    assert out.endswith(DONE)
    out = run(event({"delta": {"content": "ok "}}), event({"delta": {"content": SECRET}}).rstrip(b"\n"))
    assert SECRET.encode() not in out and "error" in payloads(out)[-1]


def test_request_text_is_one_text_whatever_field_it_is_in() -> None:
    body = {
        "model": "gpt",
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "half AKIA4HJQ"}, {"type": "text", "text": "7XRZ2PLWKD5N"}],
            }
        ],
    }
    parts = [p for p in OPENAI_CHAT.payload.request_parts(body) if not p.is_value]
    # Each string on its own, and all of them joined in order.
    assert all(p.views == (("part", *p.path), ("request",)) for p in parts)


@pytest.mark.parametrize(
    "extra",
    [
        {"tools": [{"type": "function", "function": {"name": "f", "description": f"uses {SECRET}", "parameters": {}}}]},
        {"functions": [{"name": "f", "description": SECRET}]},
        {"prediction": {"type": "content", "content": SECRET}},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"description": SECRET}}}},
        {"messages": [{"role": "assistant", "refusal": SECRET}]},
        {"messages": [{"role": "user", "name": SECRET, "content": "hi"}]},
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"properties": {SECRET: {}}}}}]},
    ],
)
def test_every_string_of_a_request_is_input_text(extra: dict[str, Any]) -> None:
    # test for #6 (9)
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}], **extra}
    parts = OPENAI_CHAT.payload.request_parts(body)
    assert any(SECRET in p.text for p in parts)


def tool_call_delta(index: int, arguments: str, name: str | None = None) -> bytes:
    function: dict[str, Any] = {"arguments": arguments}
    call: dict[str, Any] = {"index": index, "function": function}
    if name is not None:
        function["name"] = name
        call.update(id=f"call_{index}", type="function")
    return event({"delta": {"tool_calls": [call]}})


def test_a_tool_calls_arguments_stream_before_the_choice_finishes() -> None:
    # The name comes whole, first; once the arguments begin it can grow no more, and the
    # arguments must not wait for finish_reason behind its undecided tail.
    moderator = StreamModerator(OpenAIChatStream(), RULES)
    chunks = [
        tool_call_delta(0, "", "get_weather"),
        *(tool_call_delta(0, a) for a in ['{"city": ', '"Paris", ', '"u": 1}']),
    ]
    out = b"".join(moderator.feed(c) for c in chunks)
    calls = [c for p in payloads(out) for c in p["choices"][0]["delta"].get("tool_calls", [])]
    assert calls[0]["function"]["name"] == "get_weather"
    assert "".join(c["function"]["arguments"] for c in calls).startswith('{"city": "Paris", ')


def test_a_second_tool_calls_name_is_read_after_the_first_calls_arguments() -> None:
    out = run(
        tool_call_delta(0, "", "lookup"),
        tool_call_delta(0, '{"q": 1}'),
        tool_call_delta(1, "", SECRET),
        tool_call_delta(1, '{"q": 2}'),
        DONE,
    )
    assert SECRET not in out.decode()


def test_another_name_for_a_tool_call_after_its_arguments_ends_the_stream_as_malformed() -> None:
    moderator = StreamModerator(OpenAIChatStream(), RULES)
    chunks = [
        tool_call_delta(0, "", f"k_{SECRET[:10]}"),
        tool_call_delta(0, '{"q": 1}'),
        tool_call_delta(0, "", SECRET[10:]),
    ]
    out = b"".join(moderator.feed(c) for c in chunks) + moderator.finish()
    assert moderator.failure == MALFORMED_MESSAGE and SECRET not in out.decode()


def repeating_name_delta(arguments: str) -> bytes:
    # llama-cpp-python, NVIDIA NIM and older vLLM send the name again with every piece.
    return event({"delta": {"tool_calls": [{"index": 0, "function": {"name": "get_weather", "arguments": arguments}}]}})


def test_a_name_sent_again_with_every_piece_of_the_arguments_streams() -> None:
    moderator = StreamModerator(OpenAIChatStream(), RULES)
    outs = [moderator.feed(repeating_name_delta(a)) for a in ['{"city": ', '"Paris", ', '"u": 1}']]
    outs.append(moderator.feed(DONE))
    assert moderator.failure is None and all(outs[1:])


def test_a_new_call_at_an_index_already_used_is_a_call_of_its_own() -> None:
    # lmdeploy and SGLang number a second call 0 again, with a new id.
    chunks = [tool_call_delta(0, "", "lookup"), tool_call_delta(0, '{"q": 1}')]
    second = event(
        {"delta": {"tool_calls": [{"index": 0, "id": "call_9", "function": {"name": SECRET, "arguments": ""}}]}}
    )
    moderator = StreamModerator(OpenAIChatStream(), RULES)
    out = b"".join(moderator.feed(c) for c in [*chunks, second, tool_call_delta(0, '{"q": 2}'), DONE])
    assert moderator.failure is None and moderator.blocked is not None and SECRET not in out.decode()


@pytest.mark.parametrize("where", ["choice", "tool call"])
def test_a_negative_index_ends_the_stream_as_malformed(where: str) -> None:
    # The SDK indexes a list with it: -1 would join the text to the last choice or call.
    call = {"index": -1 if where == "tool call" else 0, "function": {"name": "f", "arguments": "{}"}}
    chunk = (
        b"data: "
        + json.dumps(
            {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "m",
                "choices": [
                    {"index": -1 if where == "choice" else 0, "delta": {"tool_calls": [call]}, "finish_reason": None}
                ],
            }
        ).encode()
        + b"\n\n"
    )
    moderator = StreamModerator(OpenAIChatStream(), RULES)
    moderator.feed(chunk)
    moderator.finish()
    assert moderator.failure == MALFORMED_MESSAGE
