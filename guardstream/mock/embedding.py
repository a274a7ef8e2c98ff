"""Deterministic embedding vectors, shared by the OpenAI and Gemini embedding endpoints."""

from __future__ import annotations

import hashlib
import math

from guardstream.mock.script import MockScriptError

DEFAULT_DIMENSIONS = 8
MAX_DIMENSIONS = 3072


def dimensions_of(name: str, value: object) -> int:
    """The requested vector size (request field `name`), 8 when the request leaves it out."""
    if value is None:
        return DEFAULT_DIMENSIONS
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DIMENSIONS:
        raise MockScriptError(f"Request field '{name}' has value {value!r}. It must be from 1 to {MAX_DIMENSIONS}.")
    return value


def embedding_vector(text: str, model: str, dimensions: int) -> list[float]:
    """A unit vector derived from the model and the text: the same input always gets the same vector."""
    seed = f"{model}\0{text}".encode("utf-8", "backslashreplace")
    stream = b"".join(hashlib.sha256(seed + step.to_bytes(4, "big")).digest() for step in range(dimensions // 16 + 1))
    values = [int.from_bytes(stream[2 * i : 2 * i + 2], "big") / 32767.5 - 1 for i in range(dimensions)]
    norm = math.sqrt(sum(value * value for value in values)) or 1.0
    return [round(value / norm, 6) for value in values]
