"""The mock's ASGI app: routes, the request log, hold gates, and the path from a request to a scripted response."""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from guardstream.mock import anthropic, gemini, openai_chat, openai_completions, openai_responses
from guardstream.mock.errors import ErrorBody, anthropic_error, gemini_error, openai_error
from guardstream.mock.framing import Answer, JSONObject, dumps, utf8
from guardstream.mock.script import MockScript, MockScriptError
from guardstream.mock.turn import CREATED
from guardstream.mock.writer import EventStream, Holds, sleep_ms

MODEL_IDS = ("gpt-4o-mini", "gpt-4o", "claude-sonnet-4-6", "gemini-2.0-flash")
# The base URLs people give OpenAI-compatible SDKs: the host alone, /v1, Azure's v1 and Groq (/openai/v1),
# OpenRouter (/api/v1) and Gemini's OpenAI-compatible endpoint (/v1beta/openai).
OPENAI_PREFIXES = ("", "/v1", "/openai/v1", "/api/v1", "/v1beta/openai")
GEMINI_METHODS = ("generateContent", "streamGenerateContent")

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
                "query": dict(request.query_params),
                "headers": dict(request.headers),
                "body": body,
            }
        )
        return body

    async def _answer(self, request: Request, error_body: ErrorBody, build: _Builder) -> Response:
        body = await self._record(request)
        try:
            if not isinstance(body, dict):
                raise MockScriptError("The request body must be a JSON object.")
            script = MockScript.from_request(body, request.headers)
            if script.status is None:
                answer = build(request, body, script)
                return answer if isinstance(answer, Response) else EventStream(answer, script, self.holds)
        except MockScriptError as exc:
            return _json_response(400, error_body(400, str(exc)))
        await sleep_ms(script.first_byte_delay_ms)
        status = script.status or 500
        message = script.error_message or f"The mock script asked for HTTP {status}."
        return _json_response(status, error_body(status, message))

    async def chat_completions(self, request: Request) -> Response:
        return await self._answer(request, openai_error, openai_chat.answer)

    async def completions(self, request: Request) -> Response:
        return await self._answer(request, openai_error, openai_completions.answer)

    async def responses(self, request: Request) -> Response:
        return await self._answer(request, openai_error, openai_responses.answer)

    async def messages(self, request: Request) -> Response:
        return await self._answer(request, anthropic_error, anthropic.answer)

    async def gemini(self, request: Request) -> Response:
        model, _, method = str(request.path_params["rest"]).rpartition(":")

        def build(request: Request, body: JSONObject, script: MockScript) -> Answer | Response:
            if not model or method not in GEMINI_METHODS:
                message = f"Method '{method}' is not served by the mock. Use generateContent or streamGenerateContent."
                return _json_response(404, gemini_error(404, message))
            return gemini.answer(request, body, script, model, method)

        return await self._answer(request, gemini_error, build)

    async def models(self, request: Request) -> Response:
        await self._record(request)
        data = [
            {"id": model, "object": "model", "created": CREATED, "owned_by": "guardstream-mock"} for model in MODEL_IDS
        ]
        return _json_response(200, {"object": "list", "data": data})

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
    routes = []
    for prefix in OPENAI_PREFIXES:
        routes += [
            Route(f"{prefix}/chat/completions", server.chat_completions, methods=["POST"]),
            Route(f"{prefix}/completions", server.completions, methods=["POST"]),
            Route(f"{prefix}/responses", server.responses, methods=["POST"]),
            Route(f"{prefix}/models", server.models, methods=["GET"]),
        ]
    routes += [
        Route("/openai/deployments/{deployment}/chat/completions", server.chat_completions, methods=["POST"]),
        Route("/v1/messages", server.messages, methods=["POST"]),
        # Gemini puts the method after a colon in the last segment (models/gemini-2.0-flash:generateContent).
        Route("/{version}/models/{rest}", server.gemini, methods=["POST"]),
        Route("/_mock/requests", server.list_requests, methods=["GET"]),
        Route("/_mock/requests", server.clear_requests, methods=["DELETE"]),
        Route("/_mock/release/{key}", server.release, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.mock = server
    return app
