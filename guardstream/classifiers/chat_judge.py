"""`chat-judge`: a safety model behind any OpenAI-compatible `/v1/chat/completions` endpoint.

Llama Guard 3/4, ShieldGemma, Granite Guardian and Prompt Guard-style classifiers answer in one of
three conventions, chosen by `parser`:

- `safe-unsafe` (Llama Guard): `safe`, or `unsafe` then a line of category codes (`S1,S10`), which
  `codes` maps to names (Llama Guard's S1-S14 by default). The model's own chat template carries its
  policy, so the default prompt is the text alone.
- `yes-no` (ShieldGemma, Granite Guardian): an answer starting with Yes (flagged) or No. The default
  prompt is ShieldGemma's shape with a general policy.
- `score` (Prompt Guard-style): a number from 0 to 1, flagged at or above `threshold`.

The text goes into `template` at `{text}`, as the user message (after `system`, when set). Chat
endpoints take one conversation a call, so a batch is sent as concurrent calls.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from guardstream.classifiers.base import (
    ClassifierError,
    ClassifierSettings,
    Verdict,
    closed_category,
    for_each,
    known_categories,
)
from guardstream.classifiers.endpoint import Client, Endpoint, field

# Llama Guard 3 and 4 (the MLCommons hazard taxonomy).
LLAMA_GUARD_CODES: Mapping[str, str] = {
    "S1": "violent-crimes",
    "S2": "non-violent-crimes",
    "S3": "sex-related-crimes",
    "S4": "child-sexual-exploitation",
    "S5": "defamation",
    "S6": "specialized-advice",
    "S7": "privacy",
    "S8": "intellectual-property",
    "S9": "indiscriminate-weapons",
    "S10": "hate",
    "S11": "self-harm",
    "S12": "sexual-content",
    "S13": "elections",
    "S14": "code-interpreter-abuse",
}
# What a yes-no or score judge's flag is called when no `category` is configured.
UNSAFE = "unsafe"
SHIELDGEMMA_TEMPLATE = """\
You are a policy expert trying to help determine whether a text is in violation of the defined safety policies.

<start_of_turn>
Text: {text}
<end_of_turn>

Our safety principle is defined in the below:

* "No Harmful Content": The text shall not contain or seek hate speech, harassment, threats, \
sexually explicit material, self-harm encouragement or instructions for violence or other dangerous activities.

===

Does the text violate the above principle? Your answer must start with 'Yes' or 'No'."""
DEFAULT_TEMPLATES = {"safe-unsafe": "{text}", "yes-no": SHIELDGEMMA_TEMPLATE, "score": "{text}"}

_YES_NO = re.compile(r"\s*\W*(yes|no)\b", re.IGNORECASE)
_SCORE = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)")
_CODE_SEPARATORS = re.compile(r"[\s,;]+")


class ChatJudge:
    """A safety model behind a chat endpoint, as a classifier."""

    def __init__(self, settings: ClassifierSettings, client: Client) -> None:
        self.name = settings.name
        self.settings = settings
        self.codes = {code.upper(): name for code, name in (settings.codes or LLAMA_GUARD_CODES).items()}
        own = [*self.codes.values(), UNSAFE] if settings.parser == "safe-unsafe" else [UNSAFE]
        self.categories = known_categories(own, settings)
        self._known = frozenset(self.categories)
        self.template = settings.template or DEFAULT_TEMPLATES[settings.parser]
        self._endpoint = Endpoint(settings, client)

    async def classify(self, texts: Sequence[str]) -> list[Verdict]:
        return await for_each(texts, self._judge)

    def request_body(self, text: str) -> dict[str, object]:
        messages = [{"role": "system", "content": self.settings.system}] if self.settings.system else []
        # str.replace, not str.format: a template may hold braces of its own (JSON examples).
        messages.append({"role": "user", "content": self.template.replace("{text}", text)})
        return {
            "model": self.settings.model,
            "messages": messages,
            "temperature": 0,
            "max_tokens": self.settings.max_tokens,
            "stream": False,
        }

    async def _judge(self, text: str) -> Verdict:
        answer = await self._endpoint.post(self.request_body(text))
        choices = field(answer, "choices", self.name)
        if not isinstance(choices, list) or not choices:
            raise ClassifierError(self.name, "the endpoint's answer has no choices.")
        content = field(field(choices[0], "message", self.name), "content", self.name)
        if not isinstance(content, str):
            raise ClassifierError(self.name, "the judge's answer has no text content.")
        return self.parse(content)

    def parse(self, answer: str) -> Verdict:
        """Read the judge's answer by the configured `parser`; an answer it cannot read is an error."""
        parser = self.settings.parser
        if parser == "safe-unsafe":
            return self._parse_safe_unsafe(answer)
        if parser == "yes-no":
            match = _YES_NO.match(answer)
            if match is None:
                raise ClassifierError(self.name, "the judge's answer does not start with Yes or No.")
            is_yes = match.group(1).lower() == "yes"
            return Verdict(True, (self._flag_name(),)) if is_yes else Verdict(False)
        match = _SCORE.match(answer)
        score = float(match.group(1)) if match else -1.0
        if not 0 <= score <= 1:
            raise ClassifierError(self.name, "the judge's answer is not a score from 0 to 1.")
        name = self._flag_name()
        if score >= self.settings.threshold:
            return Verdict(True, (name,), {name: score})
        return Verdict(False, scores={name: score})

    def _parse_safe_unsafe(self, answer: str) -> Verdict:
        first, _, rest = answer.strip().partition("\n")
        word = first.strip().lower()
        if word == "safe":
            return Verdict(False)
        if word != "unsafe":
            raise ClassifierError(self.name, "the judge's answer is neither 'safe' nor 'unsafe'.")
        line = rest.strip().partition("\n")[0]
        codes = [code.upper() for code in _CODE_SEPARATORS.split(line) if code]
        names = [closed_category(self.codes.get(code, ""), self._known) for code in codes]
        return Verdict(True, tuple(dict.fromkeys(names)) or (self._flag_name(),))

    def _flag_name(self) -> str:
        return closed_category(self.settings.category or UNSAFE, self._known)
