"""Classifiers: checks of meaning (hate, harassment, violence, self-harm, injection) that rules cannot express.

Each kind is one module: `openai_moderation` (any `/v1/moderations` endpoint), `chat_judge` (a
safety model behind a chat endpoint), `http` (your own service), `python` (your own function) and
`local_offensive` (a model that runs in-process). `base` holds what they share, `settings` reads
`[[classifiers]]` tables, `registry` builds classifiers from settings, and `policy` runs one call
under its timeout and concurrency limit.

```python
classifiers = load_classifiers(parse_classifiers(tables, "guardstream.toml"), client=client)
limiters = make_limiters(classifiers)
results = await run_with_policy(classifiers[0], ["some window of text"], limiters[classifiers[0].name])
```
"""

from __future__ import annotations

from guardstream.classifiers.base import (
    Classifier,
    ClassifierError,
    ClassifierFailure,
    ClassifierSettings,
    Verdict,
)
from guardstream.classifiers.policy import make_limiters, run_with_policy
from guardstream.classifiers.registry import LoadedClassifiers, load_classifiers
from guardstream.classifiers.settings import KINDS, parse_classifiers

__all__ = [
    "KINDS",
    "Classifier",
    "ClassifierError",
    "ClassifierFailure",
    "ClassifierSettings",
    "LoadedClassifiers",
    "Verdict",
    "load_classifiers",
    "make_limiters",
    "parse_classifiers",
    "run_with_policy",
]
