"""From settings to classifiers: `load_classifiers` builds each configured kind and checks what it needs now."""

from __future__ import annotations

from collections.abc import Iterable

import httpx

from guardstream.classifiers.base import Classifier, ClassifierSettings
from guardstream.classifiers.chat_judge import ChatJudge
from guardstream.classifiers.endpoint import Client, LoopClients
from guardstream.classifiers.http import HTTPClassifier
from guardstream.classifiers.local_offensive import LocalOffensive
from guardstream.classifiers.openai_moderation import OpenAIModeration
from guardstream.classifiers.python import PythonClassifier


class LoadedClassifiers(list[Classifier]):
    """The configured classifiers, in order, and the HTTP clients made for them when none was given."""

    def __init__(self, classifiers: Iterable[Classifier], owned_client: LoopClients | None = None) -> None:
        super().__init__(classifiers)
        self.owned_client = owned_client

    async def aclose(self) -> None:
        """Close the client `load_classifiers` made (a client passed to it stays open: it is the caller's)."""
        if self.owned_client is not None:
            await self.owned_client.aclose()


def load_classifiers(
    settings_list: Iterable[ClassifierSettings], *, client: httpx.AsyncClient | None
) -> LoadedClassifiers:
    """Build every configured classifier, in order.

    Network kinds share `client` (the proxy passes its own). With `None`, they share clients made
    for them, one per event loop (`LoopClients`); `await classifiers.aclose()` closes the current
    loop's. Anything a classifier needs that is missing (an API key's variable, a module, the local
    model's package) raises `ConfigError` now, at start-up.

    ```python
    classifiers = load_classifiers(config.classifiers, client=client)
    ```
    """
    owned: LoopClients | None = None
    shared: Client | None = client
    classifiers: list[Classifier] = []
    for settings in settings_list:
        if settings.kind == "python":
            classifiers.append(PythonClassifier(settings))
        elif settings.kind == "local-offensive":
            classifiers.append(LocalOffensive(settings))
        else:
            if shared is None:
                # Per-request timeouts come from each classifier's timeout_ms.
                shared = owned = LoopClients()
            if settings.kind == "openai-moderation":
                classifiers.append(OpenAIModeration(settings, shared))
            elif settings.kind == "chat-judge":
                classifiers.append(ChatJudge(settings, shared))
            else:
                classifiers.append(HTTPClassifier(settings, shared))
    return LoadedClassifiers(classifiers, owned)
