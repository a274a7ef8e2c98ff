"""The Python face (`Guard`): text leaves as soon as it is cleared, a block stops the caller's source
at once, and classifier checks work however many event loops the caller runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from guardstream import Blocked, Config, Guard
from guardstream.config import parse_config
from tests.conftest import MockModel

KEY = "AKIA4HJQ7XRZ2PLWKD5N"
ANSWER = "The library keeps its books on open shelves, sorted by subject. " * 20


def chunks_of(text: str, size: int = 5) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


class Source:
    """Chunks handed out one at a time, counting how many the guard has pulled."""

    def __init__(self, chunks: list[str]) -> None:
        self.chunks = chunks
        self.pulled = 0

    def __iter__(self) -> Iterator[str]:
        for chunk in self.chunks:
            self.pulled += 1
            yield chunk

    async def __aiter__(self) -> AsyncIterator[str]:
        for chunk in self:
            yield chunk


def test_check_blocks_a_key_in_a_whole_text() -> None:
    assert Guard().check(f"my key is {KEY}").is_blocked


def test_stream_sync_releases_text_before_the_source_ends() -> None:
    source = Source(chunks_of(ANSWER))
    pieces = Guard().stream_sync(source)
    next(pieces)
    assert source.pulled < 5
    assert "".join(pieces) != ""


def test_stream_releases_text_before_the_source_ends() -> None:
    source = Source(chunks_of(ANSWER))

    async def first_piece() -> int:
        async for _ in Guard().stream(source):
            return source.pulled
        return -1

    assert 0 < asyncio.run(first_piece()) < 5


def test_stream_sync_blocks_at_the_chunk_that_completes_a_key() -> None:
    source = Source(chunks_of(f"Use {KEY} for the bucket. " + ANSWER))
    released: list[str] = []
    with pytest.raises(Blocked) as blocked:
        for piece in Guard().stream_sync(source):
            released.append(piece)
    assert blocked.value.rule == "secrets.aws-access-key-id"
    assert source.pulled == 5  # "Use A" "KIA4H" "JQ7XR" "Z2PLW" "KD5N ": not one chunk more
    assert "".join(released) == "Use "


def test_stream_blocks_at_the_chunk_that_completes_a_key() -> None:
    source = Source(chunks_of(f"Use {KEY} for the bucket. " + ANSWER))
    released: list[str] = []

    async def run() -> None:
        async for piece in Guard().stream(source):
            released.append(piece)

    with pytest.raises(Blocked):
        asyncio.run(run())
    assert source.pulled == 5
    assert "".join(released) == "Use "


def test_stream_sync_redacts_in_place_and_goes_on() -> None:
    text = "Write to jane.doe@mail.example.org for the keys. " + ANSWER
    released = "".join(Guard().stream_sync(chunks_of(text, 3)))
    assert "jane.doe" not in released
    assert released.startswith("Write to [REDACTED:email] for the keys.")
    assert released.endswith(ANSWER)


def classifier_config(mock: MockModel, on_error: str) -> Config:
    table = {
        "name": "omni",
        "kind": "openai-moderation",
        "url": f"{mock.url}/v1/moderations",
        "mode": "strict",
        "on_error": on_error,
    }
    return parse_config({"moderation": {"packs": []}, "classifiers": [table]})


@pytest.mark.parametrize("on_error", ["block", "allow"])
def test_stream_sync_checks_every_call_with_an_http_classifier(mock_model: MockModel, on_error: str) -> None:
    guard = Guard(classifier_config(mock_model, on_error))
    for _ in range(3):
        assert "".join(guard.stream_sync(chunks_of("A harmless answer about bread."))) == (
            "A harmless answer about bread."
        )
        with pytest.raises(Blocked) as blocked:
            "".join(guard.stream_sync(chunks_of("Now MOCKFLAG-violence here.")))
        assert "classifier omni (violence)" in str(blocked.value)


def test_stream_checks_under_one_event_loop_after_another(mock_model: MockModel) -> None:
    guard = Guard(classifier_config(mock_model, "allow"))

    async def run(text: str) -> str:
        try:
            return "".join([piece async for piece in guard.stream(Source(chunks_of(text)))])
        finally:
            await guard.aclose()  # as with any HTTP client: close it before its loop ends

    for _ in range(3):
        assert asyncio.run(run("A harmless answer about soup.")) == "A harmless answer about soup."
        with pytest.raises(Blocked):
            asyncio.run(run("Now MOCKFLAG-violence here."))
