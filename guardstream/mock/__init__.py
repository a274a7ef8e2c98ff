"""The built-in scripted model server: a real upstream for tests, the demo and benchmarks.

It speaks OpenAI Chat Completions (also on the Azure deployment path), legacy OpenAI Completions,
OpenAI Responses, Anthropic Messages and Gemini `generateContent` / `streamGenerateContent`, streamed
and not, in the shapes the official SDKs parse, under the base-URL prefixes SDKs are given. Endpoints
that generate no chat answer (models, embeddings, token counts, files, batches) give a proxy's
pass-through routes a real upstream. The *request* chooses the answer: a `"mock"` object in the JSON
body, or `x-mock-<field>` headers, fill in a `MockScript`.

```python
uvicorn.run(create_mock_app(), port=8081)

client = OpenAI(base_url="http://127.0.0.1:8081/v1", api_key="test")
client.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True,
    extra_body={"mock": {"reply": "Hi there", "chunk_chars": 2, "delay_ms": 20, "drop_after": 3}},
)
```

Ids come from a digest of the request and timestamps are fixed, so identical requests get
byte-identical answers: tests compare a proxied answer with a direct one byte for byte.

Modules: `script` (what a request asks for), `framing` (events to bytes), `writer` (timing, faults
and the raw fields), `compression`, `errors` (native error bodies), `turn` (what the builders
share), one builder per format (`openai_chat`, `openai_completions`, `openai_responses`,
`anthropic`, `gemini`), `logprobs`, `openai_resources` and `gemini_resources` (answers without
generated text), `embedding`, and `app` (routes and state).
"""

from __future__ import annotations

from guardstream.mock.app import create_mock_app
from guardstream.mock.script import DEFAULT_REPLY, MockScript, MockScriptError, MockToolCall

__all__ = ["DEFAULT_REPLY", "MockScript", "MockScriptError", "MockToolCall", "create_mock_app"]
