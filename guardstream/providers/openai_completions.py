"""Legacy OpenAI Completions (`POST /v1/completions`), still served by many compatible servers.

The same wire as Chat Completions with `choices[].text` for the text and the older `logprobs`
shape (`tokens`, `token_logprobs`, `top_logprobs` as token -> logprob maps, `text_offset`):
the chosen tokens must spell the choice's text, or the logprobs are dropped.
"""

from __future__ import annotations

from typing import Any

from guardstream.providers.base import Provider
from guardstream.providers.openai_chat import OpenAIChatPayload, OpenAIChatStream

PROVIDER = "openai-completions"
LEGACY_LOGPROB_KEYS = frozenset({"tokens", "token_logprobs", "top_logprobs", "text_offset"})


class OpenAICompletionsStream(OpenAIChatStream):
    provider = PROVIDER
    chunk_object = "text_completion"

    def logprobs_agree(self, choice: dict[str, Any]) -> bool:
        logprobs = choice.get("logprobs")
        if logprobs is None:
            return True
        if not isinstance(logprobs, dict) or not logprobs.keys() <= LEGACY_LOGPROB_KEYS:
            return False
        tokens = logprobs.get("tokens") or []
        text = choice.get("text")
        return (
            isinstance(tokens, list)
            and all(isinstance(t, str) for t in tokens)
            and "".join(tokens) == (text if isinstance(text, str) else "")
        )

    def finish_choice(self, index: int) -> dict[str, Any]:
        return {"text": "", "index": index, "logprobs": None, "finish_reason": "content_filter"}


# Bodies are Chat's: every string moderated, cut choices finish with content_filter.
OPENAI_COMPLETIONS = Provider(name=PROVIDER, stream_codec=OpenAICompletionsStream, payload=OpenAIChatPayload())
