"""Classifier answers: OpenAI's `/v1/moderations`, and a safety judge behind the chat route.

A moderation request comes from guardstream, not from the end user, so it cannot carry a script:
the *text* decides. Any text containing `MOCKFLAG-<category>` (`MOCKFLAG-violence`) is flagged in
that category with score 0.99; other scores are small and fixed by the text. Timing and failures
come from `x-mock-*` headers configured on the classifier (`delay_ms` delays the whole answer,
`status` answers that error), and a text containing `MOCKHOLD-<key>` is answered only once
`POST /_mock/release/<key>` is called: one stuck call among many.

The judge: a chat request whose `model` is `mock-judge` is answered as Llama Guard would (`safe`,
or `unsafe` and a line of codes: a flag named like a code, `MOCKFLAG-S10`, gives that code, any
other flag `S1`); `mock-judge-yes-no` answers `Yes` or `No`, `mock-judge-score` `0.99` or `0.01`.
"""

from __future__ import annotations

import hashlib
import re

from starlette.requests import Request

from guardstream.classifiers.openai_moderation import OPENAI_CATEGORIES as CATEGORIES
from guardstream.mock.framing import JSON_BODY, Answer, Event, JSONObject, dumps
from guardstream.mock.script import MockScript, MockScriptError

FLAG = re.compile(r"MOCKFLAG-([A-Za-z0-9]+(?:[/_-][A-Za-z0-9]+)*)")
HOLD = re.compile(r"MOCKHOLD-([A-Za-z0-9_-]+)")
FLAGGED_SCORE = 0.99
DEFAULT_MODEL = "omni-moderation-latest"
JUDGE_MODELS = ("mock-judge", "mock-judge-yes-no", "mock-judge-score")
LLAMA_GUARD_CODE = re.compile(r"S[0-9]{1,2}")


def flags(text: str) -> list[str]:
    """The categories `text` asks to be flagged in, in order of first mention."""
    return list(dict.fromkeys(FLAG.findall(text)))


def _small_score(text: str, category: str) -> float:
    # Low, varied and reproducible, as a real model's scores for clean text are.
    digest = hashlib.sha256(f"{category}\0{text}".encode("utf-8", "backslashreplace")).digest()
    return round(int.from_bytes(digest[:4], "big") / 2**32 * 0.001, 8)


def _result(text: str) -> JSONObject:
    flagged = flags(text)
    names = list(CATEGORIES) + [name for name in flagged if name not in CATEGORIES]
    return {
        "flagged": bool(flagged),
        "categories": {name: name in flagged for name in names},
        "category_scores": {name: FLAGGED_SCORE if name in flagged else _small_score(text, name) for name in names},
        "category_applied_input_types": {name: ["text"] for name in names},
    }


def _inputs(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return list(value)
    # A list of multi-modal parts is one input; only its text parts are read.
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        return [" ".join(str(part.get("text", "")) for part in value if part.get("type") == "text")]
    raise MockScriptError(
        f"Request field 'input' has value {value!r}. It must be a string, a list of strings or of input parts."
    )


def moderations(request: Request, body: JSONObject, script: MockScript) -> Answer:
    """`POST /v1/moderations` in OpenAI's exact shape, one result per input."""
    inputs = _inputs(body.get("input"))
    model = str(body.get("model") or DEFAULT_MODEL)
    digest = hashlib.sha256(dumps([model, inputs]).encode("utf-8", "backslashreplace")).hexdigest()[:16]
    document = {"id": f"modr-mock-{digest}", "model": model, "results": [_result(text) for text in inputs]}
    # `MOCKHOLD-<key>` in a text holds this answer until the key is released: a stuck classifier call.
    held = next((match.group(1) for text in inputs if (match := HOLD.search(text))), None)
    return Answer([Event(dumps(document))], JSON_BODY, is_buffered=True, wait_ms=script.delay_ms, hold_key=held)


def _message_text(messages: object) -> str:
    if not isinstance(messages, list):
        return ""
    texts = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [str(part.get("text", "")) for part in content if isinstance(part, dict)]
    return "\n".join(texts)


def judge_reply(model: str, messages: object) -> str:
    """What the mock judge `model` answers to a conversation."""
    found = flags(_message_text(messages))
    if model == "mock-judge-yes-no":
        return "Yes" if found else "No"
    if model == "mock-judge-score":
        return "0.99" if found else "0.01"
    if not found:
        return "safe"
    codes = dict.fromkeys(name if LLAMA_GUARD_CODE.fullmatch(name) else "S1" for name in found)
    return "unsafe\n" + ",".join(codes)
