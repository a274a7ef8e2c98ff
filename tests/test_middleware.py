"""GuardStreamMiddleware (#8): an app's own SSE, moderated as it streams.

Raw-ASGI tests call the middleware with a recording `send` (httpx's ASGITransport and Starlette's
TestClient buffer whole bodies, so they cannot show incremental delivery); end-to-end tests run
FastAPI and Starlette apps under uvicorn on 127.0.0.1.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx
import pytest
from fastapi import BackgroundTasks, Depends, FastAPI
from fastapi.responses import StreamingResponse as FastAPIStreamingResponse
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message

from guardstream import GuardStreamMiddleware
from guardstream.config import Config, ServerSettings
from guardstream.servers import serve_in_thread
from guardstream.sse import SSEDecoder

pytestmark = pytest.mark.anyio

SECRET = "AKIA4HJQ7XRZ2PLWKD5N"
ANSWER = f"Here is the deploy key: {SECRET}. Keep it safe, it opens everything."
BEFORE = "Here is the deploy key: "


def fastapi_style(text: str, size: int) -> Iterator[str]:
    for i in range(0, len(text), size):
        yield f"data: {json.dumps({'content': text[i : i + size]})}\n\n"
    yield 'data: {"done": true}\n\n'


def spring_style(text: str, size: int) -> Iterator[str]:
    for i in range(0, len(text), size):
        yield f"data: {json.dumps({'id': 'msg_1', 'content': text[i : i + size]})}\n\n"
    yield "data: [DONE]\n\n"


def openai_style(text: str, size: int) -> Iterator[str]:
    for i in range(0, len(text), size):
        chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        chunk["choices"] = [{"index": 0, "delta": {"content": text[i : i + size]}, "finish_reason": None}]
        yield f"data: {json.dumps(chunk)}\n\n"
    yield "data: [DONE]\n\n"


FORMATS = {"fastapi": fastapi_style, "spring": spring_style, "openai": openai_style}


def read_text(body: bytes) -> tuple[str, list[Any]]:
    """(the content a browser client assembles, every event payload)."""
    payloads: list[Any] = []
    text = []
    for event in SSEDecoder().decode(body):
        if not event.has_data or event.data == "[DONE]":
            continue
        payload = json.loads(event.data)
        payloads.append(payload)
        if "content" in payload:
            text.append(payload["content"])
        for choice in payload.get("choices", []):
            text.append(choice["delta"].get("content") or "")
    return "".join(text), payloads


# -- raw ASGI ---------------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.arrived = anyio.Event()

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)
        self.arrived.set()

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.response.body")


def scope(spec_version: str = "2.4", path: str = "/chat", method: str = "GET") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": spec_version},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"test")],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
    }


async def never_disconnects() -> Message:
    await anyio.sleep_forever()
    raise AssertionError  # pragma: no cover


class Generator:
    """An app's token generator that records how far it was pulled."""

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.pulled = 0
        self.proceed = anyio.Event()
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[str]:
        try:
            for event in self.events:
                self.pulled += 1
                yield event
                if self.pulled == 1:
                    await self.proceed.wait()
        finally:
            self.closed = True


def streaming_app(generator: Generator) -> ASGIApp:
    async def endpoint(request: Request) -> StreamingResponse:
        return StreamingResponse(generator.__aiter__(), media_type="text/event-stream")

    return Starlette(routes=[Route("/chat", endpoint)])


async def test_events_are_delivered_one_at_a_time_not_buffered() -> None:
    # Each event ends where no rule could still be matching, so nothing needs holding back.
    generator = Generator(list(fastapi_style("first words. then more words. ", 13)))
    app = GuardStreamMiddleware(streaming_app(generator))
    recorder = Recorder()
    with anyio.fail_after(2):
        async with anyio.create_task_group() as tg:
            tg.start_soon(app, scope(), never_disconnects, recorder)
            while b"first words" not in recorder.body:
                recorder.arrived = anyio.Event()
                await recorder.arrived.wait()
            # The first event is out while the generator is still waiting to produce the second.
            assert generator.pulled == 1
            generator.proceed.set()
            while not any(m["type"] == "http.response.body" and not m.get("more_body") for m in recorder.messages):
                recorder.arrived = anyio.Event()
                await recorder.arrived.wait()
            tg.cancel_scope.cancel()
    assert read_text(recorder.body)[0] == "first words. then more words. "


@pytest.mark.parametrize("spec_version", ["2.3", "2.4"])
async def test_the_apps_generator_stops_after_a_block(spec_version: str) -> None:
    events = [f"data: {json.dumps({'content': SECRET})}\n\n"] + [f"data: {json.dumps({'content': ' more'})}\n\n"] * 50
    generator = Generator(events)
    generator.proceed.set()
    app = GuardStreamMiddleware(streaming_app(generator))
    recorder = Recorder()

    async def disconnect_late() -> Message:
        await anyio.sleep(5)
        return {"type": "http.disconnect"}

    with anyio.fail_after(2):
        await app(scope(spec_version), disconnect_late, recorder)
    text, payloads = read_text(recorder.body)
    assert SECRET not in recorder.body.decode() and payloads[-1]["error"]["code"] == "content_filter"
    assert generator.pulled < len(events)
    assert not recorder.messages[-1].get("more_body")


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    """A generator left in a reference cycle would close only when the cyclic collector runs."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class ModelGenerator:
    """An app's generator streaming from its model: it waits between tokens, like a socket read."""

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.pulled = 0
        self.closed_at: float | None = None

    async def __aiter__(self) -> AsyncIterator[str]:
        try:
            for event in self.events:
                self.pulled += 1
                yield event
                await anyio.sleep(0.01)
        finally:
            self.closed_at = time.monotonic()


SECRET_EVENTS = [f"data: {json.dumps({'content': 'Use '})}\n\n", f"data: {json.dumps({'content': SECRET})}\n\n"] + [
    f"data: {json.dumps({'content': ' more'})}\n\n"
] * 200


@pytest.mark.parametrize("spec_version", ["2.3", "2.4"])
async def test_a_block_closes_the_apps_generator_before_the_app_returns(spec_version: str, no_cyclic_gc: None) -> None:
    generator = ModelGenerator(SECRET_EVENTS)
    ran: list[str] = []
    background = BackgroundTask(ran.append, "background")

    async def chat(request: Request) -> StreamingResponse:
        return StreamingResponse(generator.__aiter__(), media_type="text/event-stream", background=background)

    app = GuardStreamMiddleware(Starlette(routes=[Route("/chat", chat)]))
    recorder = Recorder()
    with anyio.fail_after(2):
        await app(scope(spec_version), never_disconnects, recorder)
    assert generator.closed_at is not None and generator.pulled <= 3
    assert ran == ["background"]
    assert json.loads(SSEDecoder().decode(recorder.body)[-1].data)["error"]["code"] == "content_filter"


def text_style(text: str, size: int) -> Iterator[str]:
    for i in range(0, len(text), size):
        yield f"data: {text[i : i + size]}\n\n"


async def test_metrics_name_the_streams_format_and_count_each_request() -> None:
    registry = CollectorRegistry()
    streams = {"openai": openai_style, "fastapi": fastapi_style, "text": text_style}
    for style in streams.values():
        for text in ("A calm answer.", ANSWER):
            events = list(style(text, 5))

            async def chat(request: Request, events: list[str] = events) -> StreamingResponse:
                return StreamingResponse(iter(events), media_type="text/event-stream")

            # A new middleware per request, all on one registry, as several apps in one process.
            app = GuardStreamMiddleware(Starlette(routes=[Route("/chat", chat)]), registry=registry)
            await app(scope(), never_disconnects, Recorder())
    for provider in ("openai-chat", "json-field", "text"):
        for outcome in ("passed", "blocked_output"):
            labels = {"provider": provider, "outcome": outcome}
            assert registry.get_sample_value("guardstream_requests_total", labels) == 1, labels
            assert registry.get_sample_value("guardstream_request_duration_seconds_count", labels) == 1
        assert (registry.get_sample_value("guardstream_released_chars_total", {"provider": provider}) or 0) > 0


def test_metrics_count_a_request_refused_before_the_app_answers() -> None:
    registry = CollectorRegistry()
    app = json_echo_app(moderate_requests=True, registry=registry)
    with serve_in_thread(app) as url:
        httpx.post(f"{url}/ask", json={"question": f"is {SECRET} valid?"})
    labels = {"provider": "json-field", "outcome": "blocked_input"}
    assert registry.get_sample_value("guardstream_requests_total", labels) == 1


async def test_content_length_is_dropped_and_streaming_headers_set() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = b'data: {"content": "mail jane.doe@example.com"}\n\n'
        headers = [(b"content-type", b"text/event-stream"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    recorder = Recorder()
    await GuardStreamMiddleware(app)(scope(), never_disconnects, recorder)
    headers = dict(recorder.messages[0]["headers"])
    assert b"content-length" not in headers and headers[b"cache-control"] == b"no-store"
    assert read_text(recorder.body)[0] == "mail [REDACTED:email]"


async def test_a_compressed_event_stream_fails_closed() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/event-stream"), (b"content-encoding", b"gzip")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"\x1f\x8b...", "more_body": False})

    recorder = Recorder()
    await GuardStreamMiddleware(app)(scope(), never_disconnects, recorder)
    assert recorder.messages[0]["status"] == 502 and b"\x1f\x8b" not in recorder.body


async def test_other_responses_pass_untouched() -> None:
    app = Starlette(routes=[Route("/chat", lambda r: PlainTextResponse(f"plain {SECRET}"))])
    recorder = Recorder()
    await GuardStreamMiddleware(app)(scope(), never_disconnects, recorder)
    assert recorder.body == f"plain {SECRET}".encode()


# -- end to end under uvicorn -----------------------------------------------------------------


def fastapi_app(style: str, size: int, **options: Any) -> FastAPI:
    app = FastAPI()
    app.state.ran = 0

    @app.get("/chat")
    async def chat(text: str = ANSWER) -> FastAPIStreamingResponse:
        async def tokens() -> AsyncIterator[str]:
            for event in FORMATS[style](text, size):
                yield event

        return FastAPIStreamingResponse(tokens(), media_type="text/event-stream")

    @app.post("/ask")
    async def ask(request: Request) -> dict[str, str]:
        app.state.ran += 1
        return {"echo": (await request.json())["question"]}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": f"fine {SECRET}"}

    app.add_middleware(GuardStreamMiddleware, **options)
    return app


def starlette_app(style: str, size: int, **options: Any) -> Starlette:
    async def chat(request: Request) -> StreamingResponse:
        text = request.query_params.get("text", ANSWER)
        return StreamingResponse(iter(FORMATS[style](text, size)), media_type="text/event-stream")

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": f"fine {SECRET}"})

    app = Starlette(routes=[Route("/chat", chat), Route("/health", health)])
    app.add_middleware(GuardStreamMiddleware, **options)
    return app


def unguarded_body(style: str, text: str, size: int) -> bytes:
    return "".join(FORMATS[style](text, size)).encode()


@pytest.fixture(params=["fastapi", "starlette"])
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def serve(framework: str, style: str, size: int, **options: Any) -> Any:
    builder = fastapi_app if framework == "fastapi" else starlette_app
    return serve_in_thread(builder(style, size, **options))


@pytest.mark.parametrize("style", list(FORMATS))
def test_benign_streams_arrive_byte_identical(framework: str, style: str) -> None:
    text = "A calm answer, with nothing in it to hide."
    with serve(framework, style, 5) as url:
        body = httpx.get(f"{url}/chat", params={"text": text}).content
    assert body == unguarded_body(style, text, 5)


@pytest.mark.parametrize("style", list(FORMATS))
@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 64])
def test_a_secret_ends_the_stream_with_nothing_of_it_delivered(framework: str, style: str, size: int) -> None:
    with serve(framework, style, size) as url:
        body = httpx.get(f"{url}/chat").content
    text, payloads = read_text(body)
    assert text == BEFORE and "AKIA" not in body.decode()
    assert payloads[-1]["error"]["code"] == "content_filter"
    assert "secrets.aws-access-key-id" in payloads[-1]["error"]["message"]


@pytest.mark.parametrize("style", list(FORMATS))
def test_redaction_happens_in_place(framework: str, style: str) -> None:
    with serve(framework, style, 3) as url:
        body = httpx.get(f"{url}/chat", params={"text": "Write to jane.doe@example.com today."}).content
    assert read_text(body)[0] == "Write to [REDACTED:email] today."


EVENTSOURCE_BODY = (
    "retry: 3000\n\n"
    ": keep-alive\n\n"
    'event: token\nid: 1\ndata: {"content": "Hello"}\n\n'
    'event: token\nid: 2\n: a comment inside\ndata: {"content": " world"}\n\n'
    'id: 3\nretry: 5000\ndata: {"done": true}\n\n'
)


def eventsource_app(framework: str, body: str) -> Any:
    """An app streaming `body` one event per chunk (blocks end in a blank line, LF or CRLF)."""
    ending = "\r\n\r\n" if "\r\n" in body else "\n\n"
    blocks = [block + ending for block in body.split(ending)[:-1]]

    async def chat(request: Request) -> StreamingResponse:
        return StreamingResponse(iter(blocks), media_type="text/event-stream")

    app: Any = FastAPI() if framework == "fastapi" else Starlette()
    app.add_route("/chat", chat)
    app.add_middleware(GuardStreamMiddleware)
    return app


@pytest.mark.parametrize("line_ending", ["\n", "\r\n"])
def test_ids_retry_lines_and_comments_arrive_byte_identical(framework: str, line_ending: str) -> None:
    body = EVENTSOURCE_BODY.replace("\n", line_ending)
    with serve_in_thread(eventsource_app(framework, body)) as url:
        received = httpx.get(f"{url}/chat").content
    assert received == body.encode()


def test_an_id_or_comment_with_an_email_is_redacted_in_place() -> None:
    email = "jane.doe@example.com"
    body = f'id: {email}\ndata: {{"content": "Hello"}}\n\n: mail {email}\n\ndata: {{"done": true}}\n\n'
    with serve_in_thread(eventsource_app("starlette", body)) as url:
        received = httpx.get(f"{url}/chat").content.decode()
    assert received == (
        'id: [REDACTED:email]\ndata: {"content": "Hello"}\n\n: mail [REDACTED:email]\n\ndata: {"done": true}\n\n'
    )


@pytest.mark.parametrize("field", ["event", "id", ""])
def test_a_secret_in_an_event_name_id_or_comment_ends_the_stream(field: str) -> None:
    line = f":{SECRET}" if not field else f"{field}: {SECRET}"
    body = f'data: {{"content": "Hello"}}\n\n{line}\ndata: {{"content": " world"}}\n\ndata: {{"done": true}}\n\n'
    with serve_in_thread(eventsource_app("starlette", body)) as url:
        received = httpx.get(f"{url}/chat").content
    text, payloads = read_text(received)
    assert SECRET.encode() not in received and text == "Hello"
    assert payloads[-1]["error"]["code"] == "content_filter"


def test_non_sse_routes_are_untouched(framework: str) -> None:
    with serve(framework, "fastapi", 5) as url:
        assert httpx.get(f"{url}/health").json() == {"status": f"fine {SECRET}"}


def test_a_blocked_request_is_answered_400_and_the_endpoint_never_runs() -> None:
    app = fastapi_app("fastapi", 5, moderate_requests=True)
    with serve_in_thread(app) as url:
        blocked = httpx.post(f"{url}/ask", json={"question": f"is {SECRET} valid?"})
        allowed = httpx.post(f"{url}/ask", json={"question": "is the sky blue?"})
    assert blocked.status_code == 400 and blocked.json()["error"]["code"] == "content_filter"
    assert allowed.json() == {"echo": "is the sky blue?"}
    assert app.state.ran == 1


def test_a_block_closes_the_generator_at_once_under_uvicorn(framework: str, no_cyclic_gc: None) -> None:
    generator = ModelGenerator(SECRET_EVENTS)

    async def chat(request: Request) -> StreamingResponse:
        return StreamingResponse(generator.__aiter__(), media_type="text/event-stream")

    app: Any = FastAPI() if framework == "fastapi" else Starlette()
    app.add_route("/chat", chat)
    app.add_middleware(GuardStreamMiddleware)
    with serve_in_thread(app) as url:
        body = httpx.get(f"{url}/chat").content
        received_at = time.monotonic()
        deadline = received_at + 2
        while generator.closed_at is None and time.monotonic() < deadline:
            time.sleep(0.01)
    assert b"content_filter" in body and SECRET.encode() not in body
    assert generator.closed_at is not None and generator.closed_at - received_at < 0.5
    assert generator.pulled <= 3


def test_a_block_ends_the_response_normally_for_the_app() -> None:
    """Background tasks run and yield-dependencies exit as on success: a block is no app error."""
    app = FastAPI()
    outcomes: list[str] = []

    async def session() -> AsyncIterator[str]:
        try:
            yield "session"
            outcomes.append("commit")
        except BaseException as exc:
            outcomes.append(f"rollback {type(exc).__name__}")
            raise

    @app.get("/chat")
    async def chat(tasks: BackgroundTasks, db: str = Depends(session)) -> FastAPIStreamingResponse:
        tasks.add_task(outcomes.append, "background")
        return FastAPIStreamingResponse(ModelGenerator(SECRET_EVENTS).__aiter__(), media_type="text/event-stream")

    app.add_middleware(GuardStreamMiddleware)
    with serve_in_thread(app) as url:
        body = httpx.get(f"{url}/chat").content
        deadline = time.monotonic() + 2
        while len(outcomes) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert b"content_filter" in body
    assert sorted(outcomes) == ["background", "commit"]


@pytest.mark.parametrize("style", list(FORMATS))
def test_an_app_failing_mid_stream_ends_with_the_formats_failure_event(framework: str, style: str) -> None:
    async def chat(request: Request) -> StreamingResponse:
        async def tokens() -> AsyncIterator[str]:
            for event in list(FORMATS[style](ANSWER, 5))[:6]:  # "Here is the deploy key: AKIA"
                yield event
            raise RuntimeError("the model connection broke")

        return StreamingResponse(tokens(), media_type="text/event-stream")

    app: Any = FastAPI() if framework == "fastapi" else Starlette()
    app.add_route("/chat", chat)
    app.add_middleware(GuardStreamMiddleware)
    with serve_in_thread(app) as url:
        body = httpx.get(f"{url}/chat").content
    text, payloads = read_text(body)
    assert BEFORE.startswith(text) and "AKIA" not in body.decode()
    assert payloads[-1]["error"]["code"] == ("upstream_error" if style == "openai" else "stream_error")
    assert "failed mid-stream" in payloads[-1]["error"]["message"]


def json_echo_app(**options: Any) -> Starlette:
    async def ask(request: Request) -> JSONResponse:
        request.app.state.ran += 1
        return JSONResponse({"echo": (await request.json())["question"]})

    async def note(request: Request) -> PlainTextResponse:
        return PlainTextResponse((await request.body()).decode())

    app = Starlette(routes=[Route("/ask", ask, methods=["POST"]), Route("/note", note, methods=["POST"])])
    app.state.ran = 0
    app.add_middleware(GuardStreamMiddleware, **options)
    return app


@pytest.mark.parametrize("content_type", ["text/plain;charset=UTF-8", None, "application/x-www-form-urlencoded"])
def test_a_json_body_is_checked_whatever_its_content_type(content_type: str | None) -> None:
    app = json_echo_app(moderate_requests=True)
    headers = {"content-type": content_type} if content_type else {}
    with serve_in_thread(app) as url:
        blocked = httpx.post(f"{url}/ask", content=json.dumps({"question": f"is {SECRET} valid?"}), headers=headers)
        allowed = httpx.post(f"{url}/ask", content=json.dumps({"question": "is the sky blue?"}), headers=headers)
        plain = httpx.post(f"{url}/note", content="not json, just a note", headers=headers)
    assert blocked.status_code == 400 and blocked.json()["error"]["code"] == "content_filter"
    assert allowed.json() == {"echo": "is the sky blue?"} and app.state.ran == 1
    assert plain.text == "not json, just a note"


def test_a_request_body_too_large_to_check_is_refused() -> None:
    app = json_echo_app(moderate_requests=True, config=Config(server=ServerSettings(max_body_bytes=64)))
    with serve_in_thread(app) as url:
        response = httpx.post(f"{url}/ask", json={"question": "x" * 100})
    assert response.status_code == 413 and app.state.ran == 0


def test_text_field_and_custom_error_events() -> None:
    def error_event(message: str, rule: str, category: str) -> str:
        return json.dumps({"type": "stopped", "why": category})

    with serve("starlette", "fastapi", 4, text_field="content", error_event=error_event) as url:
        body = httpx.get(f"{url}/chat").content
    assert read_text(body)[1][-1] == {"type": "stopped", "why": "credential"}
