"""The reference point of every proxy figure: a bare httpx -> ASGI pass-through proxy.

It parses nothing and moves raw bytes, under the same server (uvicorn, its default event loop and
HTTP parser) as `guardstream serve`, so the difference between the two is guardstream's own work.
Part of the benchmark, not of the product: it forwards anything, to one upstream.

```
python -m guardstream.bench.passthrough --upstream http://127.0.0.1:8081 --port 8090
```
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import uvicorn

from guardstream.proxy import DEFAULT_LIMITS, HOP_BY_HOP, STALE_CONNECTION

Scope = dict[str, Any]
Message = dict[str, Any]

# The proxy's own hop-by-hop list, plus the two headers httpx and uvicorn set for themselves.
NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length"}


def passthrough_app(upstream: str) -> Callable[[Scope, Any, Any], Awaitable[None]]:
    # guardstream's own pool: no cap on connections in use (every stream the benchmark opens gets
    # its own at once), 20 idle ones kept, gone before uvicorn's keep-alive timeout. (Keeping every
    # idle connection made a reused bare proxy's second round of 200 streams cost three times its
    # first: httpcore's pool looks at every connection once per idle one.)
    client = httpx.AsyncClient(timeout=None, limits=DEFAULT_LIMITS)

    async def app(scope: Scope, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k.decode().lower() not in NOT_FORWARDED]
        request = client.build_request(scope["method"], upstream + scope["path"], headers=headers, content=body)
        try:
            response = await client.send(request, stream=True)
        except STALE_CONNECTION:
            # The keep-alive race (a pooled connection closed as the request went out): one more try,
            # as guardstream makes, so that both paths fail alike.
            response = await client.send(request, stream=True)
        try:
            out_headers = [
                (k.encode(), v.encode()) for k, v in response.headers.items() if k.lower() not in NOT_FORWARDED
            ]
            await send({"type": "http.response.start", "status": response.status_code, "headers": out_headers})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A bare pass-through proxy (the benchmark's reference point).")
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(passthrough_app(args.upstream), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":  # pragma: no cover - run as a process by the benchmark
    main()
