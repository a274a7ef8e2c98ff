"""`guardstream bench`: what moderation costs, measured rather than asserted.

The engine benchmark streams a large English text (the docstrings of Python's standard library:
real prose with code, numbers and the odd e-mail address, and present on every machine) through
one window in fixed-size deltas, and reports µs per delta next to the cost of the same loop with
no rules, so the figure is the rules' own cost.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any

import click

from guardstream.packs import load_rules
from guardstream.proxy import HOP_BY_HOP
from guardstream.rules import Rule
from guardstream.window import Window

SKIPPED_MODULES = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test", "lib2to3", "ensurepip"}


def english_corpus(chars: int) -> str:
    """Deterministic English text of at least `chars` characters (repeated if the docs are short)."""
    docs: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in sorted(sys.stdlib_module_names):
            if name.startswith("_") or name in SKIPPED_MODULES:
                continue
            try:
                module = importlib.import_module(name)
            except Exception:  # platform-specific modules fail to import: skip them
                continue
            for attr in sorted(dir(module)):
                doc = inspect.getdoc(getattr(module, attr, None))
                if doc and len(doc) > 40:
                    docs.append(doc)
    text = "\n\n".join(dict.fromkeys(docs))
    while len(text) < chars:
        text += "\n\n" + text
    return text[:chars]


def time_window(
    rules: Sequence[Rule], text: str, delta_chars: int, *, normalize: bool = True
) -> tuple[float, int, int]:
    """(µs per delta, deltas, blocks) streaming `text` through fresh windows (a block restarts one)."""
    window = Window(rules, normalize=normalize)
    pos = deltas = blocks = 0
    started = time.perf_counter()
    for i in range(0, len(text), delta_chars):
        verdict = window.push(text[i : i + delta_chars])
        window.render(pos, verdict.released)
        pos = verdict.released
        deltas += 1
        if verdict.blocked is not None:
            blocks += 1
            window, pos = Window(rules, normalize=normalize), 0
    window.flush()
    elapsed = time.perf_counter() - started
    return elapsed / deltas * 1e6, deltas, blocks


def run_engine_bench(packs: Sequence[str], *, delta_chars: int = 20, chars: int = 1_000_000, repeats: int = 3) -> None:
    rules = load_rules(packs).for_direction("output")
    text = english_corpus(chars)
    click.echo(f"text: {len(text):,} chars of English (stdlib docstrings); delta: {delta_chars} chars")
    baseline = min(time_window((), text, delta_chars)[0] for _ in range(repeats))
    results = [time_window(rules, text, delta_chars) for _ in range(repeats)]
    best = min(r[0] for r in results)
    deltas, blocks = results[0][1], results[0][2]
    click.echo(f"window, no rules:          {baseline:7.2f} µs/delta")
    click.echo(
        f"window, {len(rules)} rules ({', '.join(packs)}): {best:7.2f} µs/delta  ({deltas:,} deltas, {blocks} blocks)"
    )
    click.echo(f"rules' own cost:           {best - baseline:7.2f} µs/delta")
    # Seeing through evasions: free on text that needs no mapping, a per-character map otherwise.
    plain = min(time_window(rules, text, delta_chars, normalize=False)[0] for _ in range(repeats))
    click.echo(f"normalising (NFKC, invisibles), English: {best - plain:+7.2f} µs/delta")
    accented = text.replace("e", "é")
    mapped = text.replace("a", "\uff41")  # full-width 'a': every delta needs the offset map
    for label, variant in (("accented (é for e)", accented), ("full-width a's", mapped)):
        on = min(time_window(rules, variant, delta_chars)[0] for _ in range(repeats))
        off = min(time_window(rules, variant, delta_chars, normalize=False)[0] for _ in range(repeats))
        click.echo(f"normalising, {label}: {on - off:+7.2f} µs/delta ({off:.2f} -> {on:.2f})")


def run_keyword_bench(words: int = 5_000, chars: int = 300_000) -> None:
    """Keyword lists by set lookup (what guardstream does) against `regex`'s `\\L<list>`."""
    import regex

    from guardstream.matchers import WORD, KeywordMatcher

    text = english_corpus(chars)
    vocabulary = sorted({w.casefold() for w in WORD.findall(english_corpus(2_000_000)) if len(w) > 3})
    keywords = vocabulary[:: max(1, len(vocabulary) // words)][:words]
    matcher = KeywordMatcher(keywords)
    started = time.perf_counter()
    ours = matcher.scan(text, 0, final=True)
    ours_seconds = time.perf_counter() - started
    named_list = regex.compile(r"\b\L<keywords>\b", regex.IGNORECASE, keywords=keywords)
    started = time.perf_counter()
    theirs = named_list.findall(text)
    theirs_seconds = time.perf_counter() - started
    found = len(ours.matches) if ours is not None else 0
    megabytes = len(text) / 1e6
    click.echo(f"keywords: {len(keywords):,} words over {len(text):,} chars ({found:,} / {len(theirs):,} matches)")
    click.echo(f"  set lookup (guardstream):  {megabytes / ours_seconds:7.2f} MB/s")
    click.echo(f"  regex \\L<list>:            {megabytes / theirs_seconds:7.2f} MB/s")


# --- proxy overhead: the same streams through each path, side by side, in one run -------------

# The proxy's own hop-by-hop list, plus the two headers httpx and uvicorn set for themselves.
NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length"}


def passthrough_app(upstream: str) -> Any:
    """The reference point: a bare httpx -> ASGI proxy that parses nothing and moves raw bytes."""
    import httpx

    client = httpx.AsyncClient(timeout=None)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
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


def run_passthrough(upstream: str, port: int) -> None:
    import uvicorn

    uvicorn.run(passthrough_app(upstream), host="127.0.0.1", port=port, log_level="warning")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, from /proc (Linux): the portable per-event figure."""
    import os

    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start(args: list[str], port: int) -> Any:
    import subprocess

    import httpx

    process = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return process
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise click.ClickException(f"could not start {' '.join(args)}") from None
            time.sleep(0.05)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stream_once(url: str, reply: str) -> tuple[int, float, float]:
    """(events, seconds to first byte, seconds in all) for one streamed chat answer."""
    import httpx

    body = {"model": "bench", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    body["mock"] = {"reply": reply, "chunk_chars": 4}
    events = 0
    started = time.perf_counter()
    first = 0.0
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=300) as response:
        for chunk in response.iter_raw():
            if not first:
                first = time.perf_counter() - started
            events += chunk.count(b"\n\n")
    return events, first, time.perf_counter() - started


def run_proxy_bench(*, streams: int = 5, events: Sequence[int] = (1_000, 10_000)) -> None:
    """Server CPU µs per event for each path, and the ratio to a bare pass-through proxy."""
    text = english_corpus(4 * max(events) + 100).replace("AKIA", "AKIB")
    mock_port = _free_port()
    mock = _start(["-m", "guardstream", "mock", "--port", str(mock_port)], mock_port)
    upstream = f"http://127.0.0.1:{mock_port}"
    passthrough = f"from guardstream.bench import run_passthrough; run_passthrough({upstream!r}, {{port}})"
    serve = ["-m", "guardstream", "serve", "--upstream", upstream, "--port", "{port}"]
    paths: list[tuple[str, list[str] | None]] = [
        ("upstream read directly", None),
        ("bare pass-through proxy", ["-c", passthrough]),
        ("guardstream, no rules", [*serve, "--packs", ""]),
        ("guardstream, pii+secrets", serve),
    ]
    sizes = ", ".join(f"{n:,}" for n in events)
    click.echo(f"streams of {sizes} chat events (4 chars each), {streams} of each, loopback")
    header = f"{'path':<28}{'events':>9}{'server CPU µs/event':>21}{'x bare proxy':>14}{'TTFB ms':>9}{'events/s':>10}"
    click.echo(header)
    bare: dict[int, float] = {}
    try:
        for name, args in paths:
            process, url, pid = None, upstream, mock.pid
            if args is not None:
                port = _free_port()
                process = _start([a.replace("{port}", str(port)) for a in args], port)
                url, pid = f"http://127.0.0.1:{port}", process.pid
            try:
                for count in events:
                    reply = text[: 4 * count]
                    _stream_once(url, reply[:400])  # warm up connections and code paths
                    cpu_before = _cpu_seconds(pid)
                    results = [_stream_once(url, reply) for _ in range(streams)]
                    cpu = (_cpu_seconds(pid) - cpu_before) / sum(r[0] for r in results) * 1e6
                    if name.startswith("bare"):
                        bare[count] = cpu
                    ratio = f"{cpu / bare[count]:.2f}" if count in bare and args is not None else "—"
                    ttfb = sorted(r[1] for r in results)[len(results) // 2] * 1e3
                    rate = sum(r[0] for r in results) / sum(r[2] for r in results)
                    label = name if args is not None else f"{name} (mock CPU)"
                    click.echo(f"{label:<28}{count:>9,}{cpu:>21.1f}{ratio:>14}{ttfb:>9.1f}{rate:>10,.0f}")
            finally:
                if process is not None:
                    process.terminate()
                    process.wait(timeout=10)
    finally:
        mock.terminate()
        mock.wait(timeout=10)
