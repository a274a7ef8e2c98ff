"""OpenAI Responses from the mock, as the `openai` SDK reads them."""

from __future__ import annotations

import openai

from guardstream.mock import DEFAULT_REPLY


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


def test_openai_responses_refusal_streams_a_refusal_part(openai_client: openai.OpenAI) -> None:
    events = list(
        openai_client.responses.create(
            model="gpt-4o-mini", input="hi", stream=True, extra_body={"mock": {"refusal": "I can't help."}}
        )
    )
    deltas = [event.delta for event in events if event.type == "response.refusal.delta"]
    assert "".join(deltas) == "I can't help."
    assert not [event for event in events if event.type == "response.output_text.delta"]


def test_openai_responses_deltas_carry_a_new_obfuscation_pad_each_when_asked(openai_client: openai.OpenAI) -> None:
    mock = {"reply": "Hi there.", "tool_calls": [{"name": "lookup", "arguments": '{"q": "x"}'}], "chunk_chars": 3}
    options = {"stream_options": {"include_obfuscation": True}, "mock": mock}
    events = list(openai_client.responses.create(model="gpt-4o-mini", input="hi", stream=True, extra_body=options))
    pads = [getattr(event, "obfuscation", None) for event in events if event.type.endswith(".delta")]
    assert len(pads) > 3 and all(pad and pad.isalnum() for pad in pads) and len(set(pads)) == len(pads)
    assert not any(hasattr(event, "obfuscation") for event in events if not event.type.endswith(".delta"))
