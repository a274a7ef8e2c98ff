"""guardstream: streaming content moderation for LLM APIs.

```python
import guardstream, uvicorn

app = guardstream.create_app(guardstream.load_config("guardstream.toml"))
uvicorn.run(app, port=8080)
```
"""

from __future__ import annotations

from guardstream.config import Config, ModerationSettings, ServerSettings, Upstreams, load_config
from guardstream.errors import ConfigError, GuardstreamError, ProviderError, RuleError, UpstreamError
from guardstream.packs import load_rules
from guardstream.proxy import create_app
from guardstream.rules import Rule, RuleSet, redact_text
from guardstream.sse import Event, SSEDecoder, encode_event
from guardstream.stream import StreamModerator
from guardstream.window import Verdict, Violation, Window, moderate_text

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "Event",
    "GuardstreamError",
    "ModerationSettings",
    "ProviderError",
    "Rule",
    "RuleError",
    "RuleSet",
    "SSEDecoder",
    "ServerSettings",
    "StreamModerator",
    "UpstreamError",
    "Upstreams",
    "Verdict",
    "Violation",
    "Window",
    "__version__",
    "create_app",
    "encode_event",
    "load_config",
    "load_rules",
    "moderate_text",
    "redact_text",
]
