"""What every format's builder shares: the turn to answer (script, model, ids, prompt size) and text helpers."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

from starlette.requests import Request

from guardstream.mock.framing import JSONObject, dumps
from guardstream.mock.script import MockScript, MockScriptError, MockToolCall

CREATED = 1_700_000_000


def count_tokens(text: str) -> int:
    """A rough token count (four characters a token), the same for every format."""
    return math.ceil(len(text) / 4)


def pieces(text: str, size: int) -> list[str]:
    """`text` cut into deltas of `size` characters, as the model streams it."""
    return [text[start : start + size] for start in range(0, len(text), size)]


def arguments_object(call: MockToolCall) -> JSONObject:
    """A tool call's arguments parsed, for the formats that carry them as an object."""
    try:
        value = json.loads(call.arguments) if call.arguments else {}
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise MockScriptError(
            f"Tool call '{call.name}' has arguments {call.arguments!r}. This format needs a JSON object there."
        )
    return value


@dataclass(frozen=True)
class Turn:
    """One answer to produce: the script plus what the request fixes (model, ids, prompt size)."""

    script: MockScript
    model: str
    digest: str
    prompt_tokens: int

    def output_tokens(self, text: str) -> int:
        return count_tokens(text) + sum(count_tokens(call.arguments) for call in self.script.tool_calls)

    def call_id(self, position: int, choice: int = 0) -> str:
        return f"call_mock_{self.digest}_{choice}_{position}"


def make_turn(request: Request, body: JSONObject, script: MockScript, model: str, prompt: object) -> Turn:
    # The digest covers everything that shapes the answer, so identical requests get identical ids.
    seed = json.dumps([request.url.path, body, repr(script)], sort_keys=True, ensure_ascii=True)
    digest = hashlib.sha256(seed.encode("ascii")).hexdigest()[:16]
    return Turn(script, model, digest, count_tokens(dumps(prompt)))
