"""`python`: an in-house model as a function, `module = "package.module:callable"`.

The callable takes a `str` (or, with `batch = true`, a list of them and returns a list) and returns a
bool, a dict like the `http` kind's answer, or a `Verdict`. It may be sync or async. A sync function
runs in a worker thread (at most `max_concurrency` at once), never on the event loop, so a slow
model cannot stall the streams around it; a call past `timeout_ms` is abandoned, and its thread
finishes in the background holding its slot, so a stuck model cannot pile up threads.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import anyio
import anyio.to_thread

from guardstream.classifiers.base import ClassifierError, ClassifierSettings, Verdict, for_each
from guardstream.classifiers.http import AnswerReader
from guardstream.errors import ConfigError


def import_callable(settings: ClassifierSettings) -> Callable[..., Any]:
    """The object `module` names, imported now so that a typo stops start-up, not the first stream."""
    assert settings.module is not None, "parse_classifiers requires a module for this kind"
    module_name, _, attribute = settings.module.partition(":")
    where = f"classifier {settings.name!r}: module {settings.module!r}"
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{where}: cannot import {module_name!r} ({exc}).") from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"{where}: {module_name!r} has no attribute {attribute!r}.")
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(f"{where}: {attribute!r} is not callable.")
    return target  # type: ignore[no-any-return]


def _is_async(function: Callable[..., Any]) -> bool:
    call = getattr(function, "__call__", None)  # noqa: B004 - an object with an async __call__ is async too
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(call)


class PythonClassifier:
    """A Python callable as a classifier."""

    def __init__(self, settings: ClassifierSettings, function: Callable[..., Any] | None = None) -> None:
        self.name = settings.name
        self.settings = settings
        self.function = function if function is not None else import_callable(settings)
        self.is_async = _is_async(self.function)
        self.reader = AnswerReader(settings)
        self.categories = self.reader.categories
        self._threads = anyio.CapacityLimiter(settings.max_concurrency)

    async def classify(self, texts: Sequence[str]) -> list[Verdict]:
        if self.settings.batch:
            answers: list[object] = []
            for start in range(0, len(texts), self.settings.max_batch):
                chunk = list(texts[start : start + self.settings.max_batch])
                result = await self._call(chunk)
                if not isinstance(result, list | tuple) or len(result) != len(chunk):
                    raise ClassifierError(self.name, f"the function did not return a list of {len(chunk)} answers.")
                answers += result
        elif self.is_async:
            return await for_each(texts, self._call_one)
        else:
            # One thread hop for the whole batch: a hop costs more than a small model's call.
            answers = await self._in_thread(lambda: [self.function(text) for text in texts])
        return [self.reader.verdict(answer) for answer in answers]

    async def _call_one(self, text: str) -> Verdict:
        return self.reader.verdict(await self.function(text))

    async def _call(self, argument: object) -> object:
        if self.is_async:
            return await self.function(argument)
        return await self._in_thread(partial(self.function, argument))

    async def _in_thread(self, call: Callable[[], Any]) -> Any:
        return await anyio.to_thread.run_sync(call, abandon_on_cancel=True, limiter=self._threads)
