"""Redactions in JSON text (`jsontext.py`): written so the document stays JSON, or refused."""

from __future__ import annotations

import json

from guardstream.jsontext import JsonLexState, fit_redactions

CARD = "4539578763621486"
R = "[REDACTED:card]"


def _redact(doc: str, target: str) -> str | None:
    start = doc.index(target)
    fitted = fit_redactions(doc, JsonLexState(), [(start, start + len(target), R)], "")
    if fitted is None:
        return None
    ((begin, end, replacement),) = fitted
    return doc[:begin] + replacement + doc[end:]


def test_a_whole_number_is_replaced_by_a_json_string() -> None:
    assert json.loads(_redact('{"card": ' + CARD + "}", CARD) or "") == {"card": R}


def test_a_span_inside_a_string_keeps_the_replacement_in_the_string() -> None:
    assert json.loads(_redact('{"note": "card ' + CARD + ' ok"}', CARD) or "") == {"note": f"card {R} ok"}


def test_a_span_over_part_of_a_number_is_refused() -> None:
    assert _redact('{"n": 12' + CARD + "}", CARD) is None


def test_a_span_across_a_closing_quote_is_refused() -> None:
    assert _redact('{"a": "x", "b": 1}', 'x", "b') is None


def test_a_span_that_cuts_an_escape_sequence_is_refused() -> None:
    assert _redact('{"a": "\\u00e9x"}', "00e9x") is None


def test_a_number_split_across_pieces_is_judged_by_the_piece_that_holds_each_end() -> None:
    first, second = '{"card": 45395787', "63621486}"
    at = JsonLexState().advance(first)
    assert fit_redactions(first, JsonLexState(), [(9, 25, R)], "6") == [(9, 25, json.dumps(R))]
    assert fit_redactions(second, at, [(-8, 8, R)], "") == [(-8, 8, json.dumps(R))]


def test_a_number_whose_end_is_not_yet_known_to_end_there_is_refused() -> None:
    assert fit_redactions(CARD, JsonLexState(last=":", prev=" "), [(0, 16, R)], "7") is None


def test_advancing_in_pieces_gives_the_state_of_the_whole() -> None:
    doc = '{"a": "x\\"y\\u00e9z", "card": 4539578763621486, "l": [1, -2.5e3, true]}'
    whole = JsonLexState()
    for ch in doc:
        whole = whole.step(ch)
    for cut in range(len(doc) + 1):
        assert JsonLexState().advance(doc[:cut]).advance(doc[cut:]) == whole


def test_a_raw_span_over_whole_escapes_inside_a_string_is_written_in_the_string() -> None:
    # A JSON-text window reads `\u0034` as `4` and maps the match back onto the whole escape.
    escaped = "\\u0034" + CARD[1:]
    assert json.loads(_redact('{"card": "' + escaped + '"}', escaped) or "") == {"card": R}
