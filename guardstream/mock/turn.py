"""What every format's builder shares: the turn to answer (script, model, ids, prompt size) and text helpers."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

from starlette.requests import Request

from guardstream.mock.framing import JSONObject, dumps
from guardstream.mock.script import MockScript, MockScriptError, MockToolCall

CREATED = 1_700_000_000

T = TypeVar("T")


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


def choice_count(body: JSONObject) -> int:
    """The request's `n` (OpenAI Chat and legacy Completions): how many choices to answer."""
    n = body.get("n")
    n = 1 if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 128:
        raise MockScriptError(f"Request field 'n' has value {n!r}. It must be an integer from 1 to 128.")
    return n


def wants_usage_chunk(body: JSONObject) -> bool:
    """Whether an OpenAI stream ends with a usage chunk (`stream_options.include_usage`)."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def wants_obfuscation(body: JSONObject) -> bool:
    """Whether chunks carry an `obfuscation` pad. The real API pads by default; the mock pads only
    when `stream_options.include_obfuscation` is true, so its streams stay byte-stable for tests."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_obfuscation") is True


def obfuscation_pads(seed: str) -> Iterator[str]:
    """Pads of 2 to 12 letters and digits, a new one for every chunk."""
    for count in itertools.count():
        digest = hashlib.sha256(f"{seed}:{count}".encode()).digest()
        yield base64.b64encode(digest).decode().replace("+", "").replace("/", "")[: 2 + digest[0] % 11]


def interleave(per_choice: list[list[T]]) -> list[T]:
    """Choices' events merged one choice per step, as the real API sends them for n > 1."""
    return [events[step] for step in range(max(map(len, per_choice))) for events in per_choice if step < len(events)]


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
    seed = json.dumps([request.url.path, body, script.fingerprint()], sort_keys=True, ensure_ascii=True)
    digest = hashlib.sha256(seed.encode("ascii")).hexdigest()[:16]
    return Turn(script, model, digest, count_tokens(dumps(prompt)))
