"""The mock's ASGI app: routes, the request log, hold gates, and the path from a request to a scripted response."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from guardstream.mock import (
    anthropic,
    gemini,
    gemini_resources,
    moderation,
    openai_chat,
    openai_completions,
    openai_resources,
    openai_responses,
)
from guardstream.mock.errors import ErrorBody, anthropic_error, gemini_error, openai_error
from guardstream.mock.framing import JSON_BODY, Answer, Event, JSONObject, dumps, json_answer, utf8
from guardstream.mock.script import MockScript, MockScriptError
from guardstream.mock.writer import EventStream, Holds, sleep_ms, whole_response, with_raw_body

# The base URLs people give OpenAI-compatible SDKs: the host alone, /v1, Azure's v1 and Groq (/openai/v1),
# OpenRouter (/api/v1) and Gemini's OpenAI-compatible endpoint (/v1beta/openai).
OPENAI_PREFIXES = ("", "/v1", "/openai/v1", "/api/v1", "/v1beta/openai")
GEMINI_METHODS = ("generateContent", "streamGenerateContent", "countTokens", "embedContent", "batchEmbedContents")

_Builder = Callable[[Request, JSONObject, MockScript], Answer | Response]


def _json_response(status: int, body: object) -> Response:
    return Response(utf8(dumps(body)), status_code=status, media_type="application/json")


class _MockServer:
    """The app's state (request log, hold gates) and its endpoints."""

    def __init__(self) -> None:
        self.requests: list[JSONObject] = []
        self.holds = Holds()

    async def _record(self, request: Request) -> object:
        raw = await request.body()
        try:
            body: object = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                # The path exactly as it arrived, still percent-encoded.
                "raw_path": request.scope.get("raw_path", b"").decode("latin-1"),
                "query": dict(request.query_params),
                "headers": dict(request.headers),
                "body": body,
                # The client's address and port: requests that share a port came on one connection.
                "peer": f"{request.client.host}:{request.client.port}" if request.client else None,
            }
        )
        return body

    async def _answer(self, request: Request, error_body: ErrorBody, build: _Builder) -> Response:
        body = await self._record(request)
        if body is None and request.method in ("GET", "HEAD"):
            body = {}
        try:
            if not isinstance(body, dict):
                raise MockScriptError("The request body must be a JSON object.")
            script = MockScript.from_request(body, request.headers)
            if script.status is not None:
                return await self._error(script, error_body)
            answer = build(request, body, script)
        except MockScriptError as exc:
            return _json_response(400, error_body(400, str(exc)))
        if isinstance(answer, Response):
            return answer
        answer = with_raw_body(answer, script)
        await sleep_ms(answer.wait_ms)
        if answer.hold_key is not None:
            await self.holds.wait(answer.hold_key)
        if answer.is_buffered:
            await sleep_ms(script.first_byte_delay_ms)
            return whole_response(answer, script)
        return EventStream(answer, script, self.holds)

    async def _error(self, script: MockScript, error_body: ErrorBody) -> Response:
        await sleep_ms(script.first_byte_delay_ms)
        status = script.status or 500
        if script.error_body is not None:
            return whole_response(Answer([Event(script.error_body)], JSON_BODY), script, status)
        message = script.error_message or f"The mock script asked for HTTP {status}."
        return whole_response(json_answer(error_body(status, message)), script, status)

    def endpoint(self, build: _Builder, error_body: ErrorBody) -> Callable[[Request], Awaitable[Response]]:
        """An endpoint answering with `build`, and with errors in `error_body`'s shape."""

        async def endpoint(request: Request) -> Response:
            return await self._answer(request, error_body, build)

        return endpoint

    async def gemini_method(self, request: Request) -> Response:
        model, _, method = str(request.path_params["rest"]).rpartition(":")

        def build(request: Request, body: JSONObject, script: MockScript) -> Answer | Response:
            if not model or method not in GEMINI_METHODS:
                served = ", ".join(GEMINI_METHODS)
                message = f"Method '{method}' is not served by the mock. Use one of: {served}."
                return _json_response(404, gemini_error(404, message))
            if method == "countTokens":
                return gemini_resources.count_tokens_answer(request, body, script)
            if method == "embedContent":
                return gemini_resources.embed_answer(request, body, model)
            if method == "batchEmbedContents":
                return gemini_resources.batch_embed_answer(request, body, model)
            return gemini.answer(request, body, script, model, method)

        return await self._answer(request, gemini_error, build)

    async def list_requests(self, request: Request) -> Response:
        return Response(utf8(dumps(self.requests)), media_type="application/json")

    async def clear_requests(self, request: Request) -> Response:
        count = len(self.requests)
        self.requests.clear()
        return _json_response(200, {"deleted": count})

    async def release(self, request: Request) -> Response:
        key = str(request.path_params["key"])
        self.holds.release(key)
        return _json_response(200, {"released": key})


def create_mock_app() -> Starlette:
    """Build the scripted mock model server as an ASGI app.

    All state (the request log, hold gates) lives on this app instance, at `app.state.mock`.

    ```python
    uvicorn.run(create_mock_app(), host="127.0.0.1", port=8081)
    ```
    """
    server = _MockServer()
    openai_routes = [
        ("POST", "/chat/completions", openai_chat.answer),
        ("POST", "/completions", openai_completions.answer),
        ("POST", "/responses", openai_responses.answer),
        ("GET", "/models", openai_resources.models),
        ("GET", "/models/{model:path}", openai_resources.model),
        ("POST", "/embeddings", openai_resources.embeddings),
        ("POST", "/moderations", moderation.moderations),
        ("GET", "/files", openai_resources.files),
        ("GET", "/files/{file_id}", openai_resources.file),
        ("GET", "/files/{file_id}/content", openai_resources.file_content),
        ("GET", "/batches", openai_resources.batches),
        ("GET", "/batches/{batch_id}", openai_resources.batch),
        ("POST", "/assistants/echo", openai_resources.echo),
    ]
    routes = [
        Route(prefix + path, server.endpoint(build, openai_error), methods=[method])
        for prefix in OPENAI_PREFIXES
        for method, path, build in openai_routes
    ]
    azure_chat = server.endpoint(openai_chat.answer, openai_error)
    routes += [
        Route("/openai/deployments/{deployment}/chat/completions", azure_chat, methods=["POST"]),
        Route("/v1/messages", server.endpoint(anthropic.answer, anthropic_error), methods=["POST"]),
        Route("/v1/messages/count_tokens", server.endpoint(anthropic.count_answer, anthropic_error), methods=["POST"]),
        # Gemini puts the method after a colon in the last segment (models/gemini-2.0-flash:generateContent).
        Route("/{version}/models/{rest}", server.gemini_method, methods=["POST"]),
        # After the OpenAI routes: on /v1 those answer, in Gemini's shape for google-genai clients.
        Route("/{version}/models", server.endpoint(gemini_resources.models, gemini_error), methods=["GET"]),
        Route("/{version}/models/{model}", server.endpoint(gemini_resources.model, gemini_error), methods=["GET"]),
        Route("/_mock/requests", server.list_requests, methods=["GET"]),
        Route("/_mock/requests", server.clear_requests, methods=["DELETE"]),
        Route("/_mock/release/{key}", server.release, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.mock = server
    return app
