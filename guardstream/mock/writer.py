"""The response that writes a scripted answer event by event, with the script's timing and injected faults."""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import replace

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from guardstream.mock.compression import BodyEncoder
from guardstream.mock.framing import Answer, Event, raw_framing
from guardstream.mock.script import MockScript

HOLD_TIMEOUT_SECONDS = 30.0
MALFORMED_DATA = '{"broken": '


async def sleep_ms(milliseconds: float) -> None:
    if milliseconds > 0:
        await anyio.sleep(milliseconds / 1000)


class Holds:
    """Named gates that `hold_after` streams wait on until `POST /_mock/release/{key}`."""

    def __init__(self) -> None:
        self._events: dict[str, anyio.Event] = {}

    def _event(self, key: str) -> anyio.Event:
        if key not in self._events:
            self._events[key] = anyio.Event()
        return self._events[key]

    def release(self, key: str) -> None:
        # A release may arrive before the stream reaches its hold; the set event then lets it straight through.
        self._event(key).set()

    async def wait(self, key: str) -> None:
        event = self._event(key)
        with anyio.move_on_after(HOLD_TIMEOUT_SECONDS):
            await event.wait()
        # Consume the release so a later test reusing the key holds again.
        if event.is_set() and self._events.get(key) is event:
            del self._events[key]


def with_raw_body(answer: Answer, script: MockScript) -> Answer:
    """The answer with the script's `raw_events` or `raw_body` in place of its own events, written as given."""
    if script.raw_events is not None:
        events = [Event(text) for text in script.raw_events]
    elif script.raw_body is not None:
        events = [Event(script.raw_body)]
    else:
        return answer
    # raw_events promise one HTTP chunk per entry, so even a buffered answer is then written event by event.
    is_buffered = answer.is_buffered and script.raw_events is None
    return replace(answer, events=events, framing=raw_framing(answer.framing.media_type), is_buffered=is_buffered)


def _headers(answer: Answer, script: MockScript) -> dict[str, str]:
    headers = dict(answer.headers)
    if answer.framing.media_type == "text/event-stream":
        headers["cache-control"] = "no-cache"
    # Given explicitly, the media type is sent as scripted: no charset is appended to a text/* type.
    if script.content_type is not None:
        headers["content-type"] = script.content_type
    if script.content_encoding is not None:
        headers["content-encoding"] = script.content_encoding
    return headers


def _add_scripted_headers(response: Response, script: MockScript) -> None:
    scripted = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in script.headers]
    names = {name for name, _ in scripted}
    response.raw_headers = [(name, value) for name, value in response.raw_headers if name not in names] + scripted


def whole_response(answer: Answer, script: MockScript, status: int = 200) -> Response:
    """A buffered answer, or an error, as one body with a Content-Length."""
    headers = _headers(answer, script)
    body = BodyEncoder(script.content_encoding).last(answer.body())
    response = Response(body, status_code=status, headers=headers, media_type=answer.framing.media_type)
    _add_scripted_headers(response, script)
    return response


class EventStream(Response):
    """Writes scripted events one at a time, applying the script's timing and injected faults.

    JSON answers go through here too, as a one-event stream, so every fault works on them as well.
    """

    def __init__(self, answer: Answer, script: MockScript, holds: Holds) -> None:
        self.events = answer.events
        self.framing = answer.framing
        self.script = script
        self.holds = holds
        self.encoder = BodyEncoder(script.content_encoding)
        self.status_code = 200
        self.media_type = answer.framing.media_type
        self.background = None
        self.init_headers(_headers(answer, script))
        _add_scripted_headers(self, script)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # uvicorn silently drops writes after a disconnect, so watch for it ourselves: a client that goes away
        # mid-stream (or mid-hold) ends the response quietly instead of leaving it sleeping.
        async with anyio.create_task_group() as task_group:

            async def send_then_stop() -> None:
                await self._send_events(send)
                task_group.cancel_scope.cancel()

            task_group.start_soon(send_then_stop)
            await _wait_for_disconnect(receive)
            task_group.cancel_scope.cancel()

    async def _send_events(self, send: Send) -> None:
        script = self.script
        await sleep_ms(script.first_byte_delay_ms)
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        pending = deque(self.events)
        sent = 0
        batch: list[bytes] = []
        while True:
            if sent == script.hold_after and script.hold_key is not None:
                await self._write(send, batch)
                await self.holds.wait(script.hold_key)
            if sent == script.drop_after:
                # Return without the final body message: uvicorn then closes the socket mid-body, and the client
                # sees an incomplete chunked body, as from a crashed upstream.
                await self._write(send, batch)
                return
            if not pending:
                break
            if sent == script.malformed_after:
                event = Event(MALFORMED_DATA, pending[0].name)
            else:
                event = pending.popleft()
            if sent and not batch:
                await sleep_ms(script.delay_ms)
            if script.stamp and event.data.startswith("{"):
                event = _stamped(event)
            glue = self.framing.separator if sent else self.framing.prefix
            batch.append(glue + self.framing.encode(event))
            sent += 1
            if len(batch) >= script.events_per_chunk:
                await self._write(send, batch)
        await self._write(send, batch)
        await send({"type": "http.response.body", "body": self.encoder.last(self.framing.suffix), "more_body": False})

    async def _write(self, send: Send, batch: list[bytes]) -> None:
        """The events gathered so far as one HTTP chunk (one event each unless `events_per_chunk` says more)."""
        if batch:
            body = self.encoder.chunk(b"".join(batch))
            batch.clear()
            await send({"type": "http.response.body", "body": body, "more_body": True})


# A pad of OpenAI's (`obfuscation`) as the mock writes it: letters and digits, no escapes.
PAD = re.compile(r'"obfuscation":"([0-9A-Za-z]*)"')
# Hexadecimal digits written as the letters g-v: a stamp in a pad looks like any other pad.
_HEX_TO_PAD = str.maketrans("0123456789abcdef", "ghijklmnopqrstuv")
_NOT_STAMP = str.maketrans("", "", "ghijklmnopqrstuv")


def stamp_pad(ns: int, pad: str = "") -> str:
    """`ns` as a pad, followed by the characters of `pad` that cannot be read as part of it:
    where the real API puts random letters and digits in every event, so a stamped stream
    differs from event to event only where a real one does, and by as much."""
    return format(ns, "x").translate(_HEX_TO_PAD) + pad.translate(_NOT_STAMP)


def _stamped(event: Event) -> Event:
    now = time.monotonic_ns()
    padded = PAD.subn(lambda m: f'"obfuscation":"{stamp_pad(now, m.group(1))}"', event.data, count=1)
    if padded[1]:
        return replace(event, data=padded[0])
    rest = event.data[1:]
    glue = "" if rest.lstrip().startswith("}") else ","
    return replace(event, data=f'{{"mock_sent_ns":{now}{glue}{rest}')


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
