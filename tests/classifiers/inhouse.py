"""In-house "models" for the `python` kind's tests, imported by name as a config file would name them."""

from __future__ import annotations

import time

from guardstream.classifiers import Verdict


def flags_bad(text: str) -> bool:
    return "bad" in text


async def flags_bad_async(text: str) -> dict[str, object]:
    return {"flagged": "bad" in text, "categories": {"abuse": "bad" in text, "spam": 0.1}}


def flags_bad_batch(texts: list[str]) -> list[Verdict]:
    return [Verdict("bad" in text, ("abuse",) if "bad" in text else ()) for text in texts]


async def flags_bad_batch_async(texts: list[str]) -> list[bool]:
    return ["bad" in text for text in texts]


def slow(text: str) -> bool:
    time.sleep(0.3)
    return False


def raises(text: str) -> bool:
    raise RuntimeError(f"cannot classify {text}")


def wrong_type(text: str) -> str:
    return "yes"


def wrong_length(texts: list[str]) -> list[bool]:
    return []


class AsyncCallable:
    async def __call__(self, text: str) -> bool:
        return "bad" in text


async_object = AsyncCallable()
not_callable = 42
