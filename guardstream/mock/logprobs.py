"""Token log probabilities, in the shape OpenAI Chat and Responses report them when a request asks.

Each streamed piece counts as one token. Its `top_logprobs` list the piece itself, then the script's
`logprobs` alternatives, then filler tokens, cut to the request's `top_logprobs`: text a user never
sees in the answer, yet which travels in the response (a channel a moderation proxy must not miss).
"""

from __future__ import annotations

from guardstream.mock.framing import JSONObject, utf8
from guardstream.mock.script import MockScriptError
from guardstream.mock.turn import pieces

MAX_TOP_LOGPROBS = 20
# Common tokens that fill `top_logprobs` after the scripted alternatives, up to the API's maximum of 20.
FILLER_TOKENS = tuple(" the| a|,|.| and| of| to| in| is| it| that| for| on| with| as| was| at| by| an| be".split("|"))
RESPONSES_LOGPROBS = "message.output_text.logprobs"


def _top_count(body: JSONObject) -> int:
    top = body.get("top_logprobs")
    top = 0 if top is None else top
    if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= MAX_TOP_LOGPROBS:
        raise MockScriptError(
            f"Request field 'top_logprobs' has value {top!r}. It must be an integer from 0 to {MAX_TOP_LOGPROBS}."
        )
    return top


def chat_top_logprobs(body: JSONObject) -> int | None:
    """How many alternatives each Chat token lists, or None when the request asks for no logprobs."""
    return _top_count(body) if body.get("logprobs") is True else None


def responses_top_logprobs(body: JSONObject) -> int | None:
    """The same for Responses: asked with `include: ["message.output_text.logprobs"]` or `top_logprobs`."""
    include = body.get("include")
    is_included = isinstance(include, list) and RESPONSES_LOGPROBS in include
    return _top_count(body) if is_included or body.get("top_logprobs") is not None else None


def text_logprobs(text: str, size: int, alternatives: tuple[str, ...], top: int) -> list[JSONObject]:
    """One entry per streamed piece of `text` (pieces of `size` characters)."""
    return [token_logprob(piece, position, alternatives, top) for position, piece in enumerate(pieces(text, size))]


def token_logprob(token: str, position: int, alternatives: tuple[str, ...], top: int) -> JSONObject:
    """The entry for the `position`-th token of a text: its logprob, its bytes and `top` alternatives."""
    logprob = round(-0.05 * (1 + position % 5), 4)
    candidates = list(dict.fromkeys((token, *alternatives, *FILLER_TOKENS)))[:top]
    top_logprobs = [
        {"token": candidate, "logprob": round(logprob - 1.5 * rank, 4), "bytes": list(utf8(candidate))}
        for rank, candidate in enumerate(candidates)
    ]
    return {"token": token, "logprob": logprob, "bytes": list(utf8(token)), "top_logprobs": top_logprobs}
