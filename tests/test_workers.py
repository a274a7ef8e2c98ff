"""`guardstream serve --workers N`: one socket, N processes, and one set of metrics summed over them.

Which worker accepts a connection is the kernel's choice, so the test makes it: a worker that is
stopped (SIGSTOP) accepts nothing, and the other serves every request and every scrape. A scrape
answered by one worker that counts what only the other one saw is the proof that /metrics sums.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from guardstream.histograms import HistogramChild
from tests.conftest import mock_headers
from tests.serve_process import chat_held_open, serving
from tests.test_cli import free_port

CHAT = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": "m", "stream": True, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}


class Server:
    def __init__(self, process: subprocess.Popen[str], url: str, mock_url: str) -> None:
        self.process = process
        self.url = url
        self.mock_url = mock_url

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        return self.samples().get((name, tuple(sorted(labels.items()))), 0.0)

    def workers(self) -> list[int]:
        return sorted(
            {int(dict(labels)["pid"]) for name, labels in self.samples() if name == "process_cpu_seconds_total"}
        )


def wait_for(check: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    # The run's folder (config and metrics files) goes under TMPDIR: here, where the test can look.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUARDSTREAM_")} | {"TMPDIR": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "guardstream", "serve", "--workers", "2", "--upstream", "mock", "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []
    assert process.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(process.stderr or []), daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: any("worker processes" in line for line in lines), "the server to start", 60)
        mock_url = re.search(r"mock model at (\S+)", "".join(lines))
        assert mock_url is not None, lines
        server = Server(process, url, mock_url.group(1))
        wait_for(lambda: _ready(url) and len(server.workers()) == 2, "both workers", 60)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)
        reader.join(timeout=5)
        process.stderr.close()
    # The server removed its run folder: config and metrics files live only as long as it does.
    assert not list(tmp_path.glob("guardstream-*"))


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def held_stream(server: Server, key: str) -> socket.socket:
    """An Anthropic stream that stops after its first event until the mock releases `key`."""
    body = httpx.Request("POST", "http://x", json=MESSAGES).content
    port = int(server.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = (
        f"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nanthropic-version: 2023-06-01\r\nx-mock-hold-after: 1\r\n"
        f"x-mock-hold-key: {key}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    received = b""
    while b"event:" not in received:
        chunk = sock.recv(65536)
        assert chunk, received
        received += chunk
    return sock


def chat(server: Server, count: int) -> None:
    for _ in range(count):
        # A new connection each time: it goes to whichever worker is running.
        with httpx.Client(timeout=10) as client:
            assert client.post(f"{server.url}/v1/chat/completions", json=CHAT).status_code == 200


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the workers are found and paused through /proc")
def test_metrics_are_summed_over_workers(server: Server) -> None:
    first, second = server.workers()
    passed = {"provider": "openai-chat", "outcome": "passed"}
    held = []
    os.kill(first, signal.SIGSTOP)
    try:
        chat(server, 3)
        held.append(held_stream(server, "a"))
        # A custom (multiprocess) histogram, observed once per released event: the same per chat.
        # (Held-back characters are observed per decision, and how many events one read brings
        # decides how many decisions an answer takes.)
        per_stream = server.value("guardstream_release_delay_seconds_count", provider="openai-chat") / 3
        assert server.value("guardstream_requests_total", **passed) == 3
    finally:
        os.kill(first, signal.SIGCONT)
    assert per_stream >= 1
    os.kill(second, signal.SIGSTOP)
    try:
        chat(server, 2)
        held.append(held_stream(server, "b"))
        # Served by the first worker, which saw 2 of the 5 chats and 1 of the 2 held streams.
        assert server.value("guardstream_requests_total", **passed) == 5
        assert server.value("guardstream_release_delay_seconds_count", provider="openai-chat") == 5 * per_stream
        assert server.value("guardstream_active_streams", provider="anthropic") == 2
        assert server.value("guardstream_active_streams", provider="openai-chat") == 0
    finally:
        os.kill(second, signal.SIGCONT)
    # A worker that dies without a word: its live streams stop counting, its counts stay.
    os.kill(second, signal.SIGKILL)
    wait_for(lambda: server.value("guardstream_active_streams", provider="anthropic") == 1, "the dead worker's streams")
    assert server.value("guardstream_requests_total", **passed) == 5
    for key in ("a", "b"):
        httpx.post(f"{server.mock_url}/_mock/release/{key}")
    wait_for(lambda: server.value("guardstream_active_streams", provider="anthropic") == 0, "the held stream to end")
    wait_for(
        lambda: server.value("guardstream_requests_total", provider="anthropic", outcome="passed") == 1,
        "the held stream to be counted",
    )
    # The supervisor replaced the dead worker; the replacement serves and is counted too.
    wait_for(lambda: len(server.workers()) == 2 and second not in server.workers(), "a replacement worker", 30)
    for sock in held:
        sock.close()


class Counting:
    def __init__(self) -> None:
        self.total = 0.0

    def inc(self, amount: float) -> None:
        self.total += amount


def test_histogram_child_flushes_only_what_is_new() -> None:
    files = [Counting() for _ in range(4)]  # 2 bounds + Inf, then the sum
    child = HistogramChild((1.0, 2.0), files)
    child.observe(0.5)
    child.observe(5.0)
    child.flush()
    child.flush()
    child.observe(1.5)
    child.flush()
    assert [f.total for f in files] == [1, 1, 1, 7.0]
    HistogramChild((1.0,)).flush()  # outside multiprocess mode there is nothing to write


# -- signals and reload mean the same with workers as with one process (#11, #12) ------------------


def reloads(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "guardstream_config_reloads_total" and sample.labels == {"result": "success"}:
                return sample.value
    return 0.0


def own_pack(tmp_path: Path) -> Path:
    path = tmp_path / "own.toml"
    path.write_text(
        '[pack]\nname = "own"\n[[rule]]\nid = "own.rule"\naction = "block"\npattern = "NIGHTJAR"\n', encoding="utf-8"
    )
    return path


def test_sighup_reloads_every_worker_in_place(tmp_path: Path) -> None:
    own = own_pack(tmp_path)
    (tmp_path / "guardstream.toml").write_text('[moderation]\npacks = ["secrets"]\n', encoding="utf-8")
    with serving("--upstream", "mock", "--workers", "2", cwd=tmp_path) as server:
        wait_for(lambda: len(server_workers(server.url)) == 2, "both workers")
        assert b"own.rule" not in post_chat(server.url, "NIGHTJAR ok").content
        (tmp_path / "guardstream.toml").write_text(f'[moderation]\npacks = ["secrets", "{own}"]\n', encoding="utf-8")
        server.signal(signal.SIGHUP)
        wait_for(lambda: reloads(server.url) == 2, "both workers to reload")
        answers = [post_chat(server.url, "NIGHTJAR ok") for _ in range(6)]
        pids = server_workers(server.url)
    assert all(b"own.rule" in answer.content for answer in answers)
    assert len(pids) == 2  # reloaded in place: the same two workers, none replaced


def replaced(url: str, old: int) -> Callable[[], bool]:
    def done() -> bool:
        workers = server_workers(url)
        return len(workers) == 2 and old not in workers

    return done


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the workers are found through /proc")
def test_a_worker_replaced_after_a_reload_starts_with_the_reloaded_rules(tmp_path: Path) -> None:
    own = own_pack(tmp_path)
    (tmp_path / "guardstream.toml").write_text('[moderation]\npacks = ["secrets"]\n', encoding="utf-8")
    with serving("--upstream", "mock", "--workers", "2", cwd=tmp_path) as server:
        wait_for(lambda: len(server_workers(server.url)) == 2, "both workers")
        (tmp_path / "guardstream.toml").write_text(f'[moderation]\npacks = ["secrets", "{own}"]\n', encoding="utf-8")
        server.signal(signal.SIGHUP)
        wait_for(lambda: reloads(server.url) == 2, "both workers to reload")
        # Both workers are killed in turn: every worker then serving started after the reload.
        for old in server_workers(server.url):
            os.kill(old, signal.SIGKILL)
            wait_for(replaced(server.url, old), "a new one")
        answers = [post_chat(server.url, "NIGHTJAR ok") for _ in range(4)]
    assert all(b"own.rule" in answer.content for answer in answers)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_sighup_while_starting_is_a_reload_once_up_not_the_end(tmp_path: Path, workers: str) -> None:
    own = own_pack(tmp_path)
    (tmp_path / "guardstream.toml").write_text('[moderation]\npacks = ["secrets"]\n', encoding="utf-8")
    with serving("--upstream", "mock", "--workers", workers, cwd=tmp_path, ready=False) as server:
        # The start lines are out, the server is not listening yet: SIGHUP's default would end it here.
        server.wait_for_log("guardstream: packs", timeout=30)
        (tmp_path / "guardstream.toml").write_text(f'[moderation]\npacks = ["secrets", "{own}"]\n', encoding="utf-8")
        server.signal(signal.SIGHUP)
        server.wait_ready(timeout=30)
        wait_for(lambda: b"own.rule" in post_chat(server.url, "NIGHTJAR ok").content, "the reloaded rules")
        assert server.process.poll() is None


def test_the_admin_endpoint_reloads_every_worker(tmp_path: Path) -> None:
    env = {"GUARDSTREAM_ADMIN_KEY": "admin-secret"}
    (tmp_path / "guardstream.toml").write_text('[auth]\nadmin_key_env = "GUARDSTREAM_ADMIN_KEY"\n', encoding="utf-8")
    with serving("--upstream", "mock", "--workers", "2", cwd=tmp_path, env=env) as server:
        wait_for(lambda: len(server_workers(server.url)) == 2, "both workers")
        answer = httpx.post(f"{server.url}/-/reload", headers={"authorization": "Bearer admin-secret"})
        wait_for(lambda: reloads(server.url) == 2, "both workers to reload")
        (tmp_path / "guardstream.toml").write_text("[moderation]\npacks = ['no-such-pack']\n", encoding="utf-8")
        refused = httpx.post(f"{server.url}/-/reload", headers={"authorization": "Bearer admin-secret"})
        time.sleep(1)
        after = reloads(server.url)
    assert answer.json() == {"reloaded": True}
    assert refused.status_code == 422 and after == 2  # checked where it landed, sent nowhere


def test_sigterm_drains_every_worker_then_ends_streams_with_the_terminal_event(tmp_path: Path) -> None:
    with serving("--upstream", "mock", "--workers", "2", "--server-shutdown-grace", "1", cwd=tmp_path) as server:
        wait_for(lambda: len(server_workers(server.url)) == 2, "both workers")
        thread, results = chat_held_open(server.url)
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        thread.join(timeout=30)
        assert server.process.wait(timeout=30) == 0
        elapsed = time.monotonic() - started
        stderr = server.stderr()
    assert 0.8 < elapsed < 15
    assert b"the server is shutting down" in results[0]
    assert "Traceback" not in stderr and "guardstream: stopped" in stderr


def test_a_second_signal_ends_every_workers_streams_at_once(tmp_path: Path) -> None:
    with serving("--upstream", "mock", "--workers", "2", "--server-shutdown-grace", "60", cwd=tmp_path) as server:
        wait_for(lambda: len(server_workers(server.url)) == 2, "both workers")
        thread, results = chat_held_open(server.url)
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        time.sleep(0.5)
        server.signal(signal.SIGTERM)
        thread.join(timeout=30)
        server.process.wait(timeout=30)
        elapsed = time.monotonic() - started
    assert elapsed < 20 and b"the server is shutting down" in results[0]


def test_workers_write_the_request_log(tmp_path: Path) -> None:
    with serving("--upstream", "mock", "--workers", "2", "--log-format", "json", cwd=tmp_path) as server:
        post_chat(server.url, "hello")
        stderr = server.wait_for_log('"event":"request"')
    assert '"status":200' in stderr


def post_chat(url: str, reply: str, script: dict[str, Any] | None = None) -> httpx.Response:
    headers = mock_headers(script or {"reply": reply})
    with httpx.Client(timeout=30) as client:
        return client.post(f"{url}/v1/chat/completions", json=CHAT, headers=headers)


def server_workers(url: str) -> list[int]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sorted(
        {
            int(sample.labels["pid"])
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "process_cpu_seconds_total"
        }
    )
