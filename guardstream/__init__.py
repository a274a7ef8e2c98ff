"""guardstream: streaming content moderation for LLM APIs.

Three faces over one guard:

```python
import guardstream, uvicorn

# 1. The drop-in proxy: point any OpenAI/Anthropic/Gemini SDK's base_url at it.
app = guardstream.create_app(guardstream.load_config("guardstream.toml"))
uvicorn.run(app, port=8080)

# 2. ASGI middleware for an app that streams its own Server-Sent Events.
fastapi_app.add_middleware(guardstream.GuardStreamMiddleware, text_field="content")

# 3. Python: moderate any stream of text.
guard = guardstream.Guard()
async for piece in guard.stream(tokens):      # raises guardstream.Blocked at a match
    ...
```
"""

from __future__ import annotations

from guardstream.config import (
    Config,
    ModerationSettings,
    RouteSettings,
    ServerSettings,
    Timeouts,
    Upstreams,
    load_config,
)
from guardstream.errors import ConfigError, GuardstreamError, ProviderError, RuleError
from guardstream.guard import Blocked, BodyVerdict, Guard
from guardstream.middleware import GuardStreamMiddleware
from guardstream.packs import load_rules
from guardstream.payload import TextPart
from guardstream.providers.base import ParsedEvent, PayloadCodec, Provider, StreamCodec
from guardstream.proxy import GuardstreamProxy, create_app
from guardstream.rules import Rule, RuleSet
from guardstream.sse import Event
from guardstream.stream import StreamModerator
from guardstream.window import TextVerdict, Violation

__version__ = "0.1.0"

__all__ = [
    "Blocked",
    "BodyVerdict",
    "Config",
    "ConfigError",
    "Event",
    "Guard",
    "GuardStreamMiddleware",
    "GuardstreamError",
    "GuardstreamProxy",
    "ModerationSettings",
    "ParsedEvent",
    "PayloadCodec",
    "Provider",
    "ProviderError",
    "RouteSettings",
    "Rule",
    "RuleError",
    "RuleSet",
    "ServerSettings",
    "StreamCodec",
    "StreamModerator",
    "TextPart",
    "TextVerdict",
    "Timeouts",
    "Upstreams",
    "Violation",
    "__version__",
    "create_app",
    "load_config",
    "load_rules",
]
