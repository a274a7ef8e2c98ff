"""Operating guardstream (#11), end to end: a real `guardstream serve` process, real signals, the
mock model's fault injection, and what operators read (logs, metrics, exit codes)."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors, types as genai_types

from guardstream import Guard
from guardstream.config import parse_config
from guardstream.serve import start_lines
from guardstream.sse import SSEDecoder
from tests.conftest import MockModel, mock_headers
from tests.serve_process import chat_held_open, run_serve, serving

SECRET = "AKIA4HJQ7XRZ2PLWKD5N"
CLIENT_KEY = "gs-client-key-one"
UPSTREAM_KEY = "sk-upstream-real-key-0042"
CHAT: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def chat(url: str, script: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers={**mock_headers(script), **headers}, timeout=30)


def pack(tmp_path: Path, name: str, pattern: str, *, action: str = "block") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'[pack]\nname = "{name}"\n[[rule]]\nid = "{name}.rule"\ncategory = "test"\n'
        f"pattern = '''{pattern}'''\naction = \"{action}\"\n",
        encoding="utf-8",
    )
    return path


def content(body: bytes) -> str:
    """The text a Chat client assembles from a stream."""
    out = []
    for event in SSEDecoder().decode(body):
        if event.has_data and event.data != "[DONE]":
            for choice in json.loads(event.data).get("choices", []):
                out.append(choice["delta"].get("content") or "")
    return "".join(out)


def json_lines(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


# -- 1. logs ------------------------------------------------------------------------------------------


def test_one_json_line_per_request_and_per_block_with_nothing_secret_in_it(tmp_path: Path) -> None:
    with serving("--upstream", "mock", "--log-format", "json", cwd=tmp_path) as server:
        auth = {"authorization": f"Bearer {UPSTREAM_KEY}"}
        prompt = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": f"my key {SECRET}"}]},
            headers=auth,
        )
        answer = chat(server.url, {"reply": f"the key is {SECRET} ok"}, **auth)
        redacted = chat(server.url, {"reply": "mail jane.doe@example.com now"}, **auth)
        metrics = httpx.get(f"{server.url}/metrics").text
        stderr = server.wait_for_log('"outcome":"redacted"')
    lines = json_lines(stderr)
    requests = [line for line in lines if line["event"] == "request"]
    assert [r["outcome"] for r in requests] == ["blocked_input", "blocked_output", "redacted"]
    ids = [prompt, answer, redacted]
    assert [r["request_id"] for r in requests] == [a.headers["x-guardstream-request-id"] for a in ids]
    first = requests[1]
    assert first["provider"] == "openai-chat" and first["route"] == "POST /v1/chat/completions"
    assert first["status"] == 200 and first["rules"] == ["secrets.aws-access-key-id"]
    assert first["ttfb_ms"] > 0 and first["duration_ms"] > 0 and first["held_chars"] > 0
    blocks = [line for line in lines if line["event"] == "block"]
    assert {(b["rule"], b["direction"]) for b in blocks} == {
        ("secrets.aws-access-key-id", d) for d in ("input", "output")
    }
    assert [line["rule"] for line in lines if line["event"] == "redaction"] == ["pii.email"]
    for text in (stderr, metrics, prompt.text, answer.text):
        assert SECRET not in text and "AKIA" not in text and UPSTREAM_KEY not in text and "jane" not in text


def test_a_credential_in_the_path_is_never_logged(tmp_path: Path) -> None:
    with serving("--upstream", "mock", "--log-format", "json", cwd=tmp_path) as server:
        httpx.get(f"{server.url}/v1/models/{SECRET}")
        deployment = f"{server.url}/openai/deployments/{SECRET}/chat/completions?api-version=2024-10-21"
        httpx.post(deployment, json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        httpx.post(f"{server.url}/v1/files/ghp_{SECRET}/content", json={})
        stderr = server.wait_for_log('"outcome":"not_routed"')
    routes = [line["route"] for line in json_lines(stderr) if line["event"] == "request"]
    assert routes == [
        "GET /v1/models/*",
        "POST /openai/deployments/*/chat/completions",
        "POST /v1/files/*/content",
    ]
    assert "AKIA" not in stderr


def test_text_logs_are_one_line_each_at_the_chosen_level(tmp_path: Path) -> None:
    with serving("--upstream", "mock", cwd=tmp_path) as server:
        chat(server.url, {"reply": "hello"})
        stderr = server.wait_for_log(" info request ")
    line = next(line for line in stderr.splitlines() if " info request " in line)
    assert "provider=openai-chat" in line and "outcome=passed" in line and 'route="POST /v1/chat/completions"' in line
    with serving("--upstream", "mock", "--log-level", "warning", cwd=tmp_path) as server:
        chat(server.url, {"reply": "hello"})
        time.sleep(0.3)
        assert " info request " not in server.stderr()


# -- 2. timeouts and upstream failures --------------------------------------------------------------


@pytest.mark.parametrize(
    ("upstream", "status", "cause"),
    [
        ("http://no-such-host.invalid", 502, "could not be found (DNS lookup failed)"),
        ("http://127.0.0.1:9", 502, "refused the connection"),
    ],
)
def test_an_unreachable_upstream_is_named_with_its_cause(
    tmp_path: Path, upstream: str, status: int, cause: str
) -> None:
    with serving("--upstream", upstream, "--packs", "secrets", cwd=tmp_path) as server:
        with (
            openai.OpenAI(base_url=f"{server.url}/v1", api_key=UPSTREAM_KEY, max_retries=0) as client,
            pytest.raises(openai.APIStatusError) as caught,
        ):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    host = httpx.URL(upstream).host
    assert caught.value.status_code == status and caught.value.type == "server_error"
    assert f"upstream {host}: it {cause}" in caught.value.message and UPSTREAM_KEY not in caught.value.message


def test_a_tls_failure_is_named_as_such(tmp_path: Path) -> None:
    with (
        serving("--upstream", "mock", cwd=tmp_path) as plain,
        serving("--upstream", plain.url.replace("http://", "https://"), cwd=tmp_path) as server,
    ):
        answer = chat(server.url, {"reply": "hi"})
    assert answer.status_code == 502 and "failed the TLS handshake" in answer.json()["error"]["message"]


def test_first_byte_and_idle_timeouts_are_settable(tmp_path: Path) -> None:
    with serving(
        "--upstream", "mock", "--timeouts-first-byte", "0.5", "--timeouts-idle", "0.5", cwd=tmp_path
    ) as server:
        slow = chat(server.url, {"first_byte_delay_ms": 2000})
        stalled = chat(server.url, {"reply": "a b c d", "hold_after": 2, "hold_key": "never"})
    assert slow.status_code == 504 and slow.json()["error"]["type"] == "server_error"
    assert stalled.status_code == 200 and b"sent nothing for 0.5 s" in stalled.content


def test_an_answer_read_whole_that_stalls_mid_body_is_a_502_after_the_longer_silence(tmp_path: Path) -> None:
    # Headers, then nothing: a read of the body waits max(first byte, idle), then the answer counts as broken.
    with serving(
        "--upstream", "mock", "--timeouts-first-byte", "0.5", "--timeouts-idle", "0.8", cwd=tmp_path
    ) as server:
        started = time.monotonic()
        answer = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={**CHAT, "stream": False},
            headers=mock_headers({"reply": "hi", "hold_after": 0, "hold_key": "never"}),
            timeout=30,
        )
        waited = time.monotonic() - started
    assert answer.status_code == 502 and "cannot read" in answer.json()["error"]["message"]
    assert 0.8 <= waited < 10


# -- 3. credentials -----------------------------------------------------------------------------------


def test_client_keys_are_required_in_each_sdks_own_format(tmp_path: Path) -> None:
    env = {"GUARDSTREAM_CLIENT_KEYS": f"{CLIENT_KEY},another-key"}
    with serving("--upstream", "mock", cwd=tmp_path, env=env) as server:
        with openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0) as wrong:
            with pytest.raises(openai.AuthenticationError):
                wrong.models.list()
        with anthropic.Anthropic(base_url=server.url, api_key="wrong", max_retries=0) as claude:
            with pytest.raises(anthropic.AuthenticationError):
                claude.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
        gemini = genai.Client(api_key="wrong", http_options=genai_types.HttpOptions(base_url=server.url))
        with pytest.raises(genai_errors.ClientError) as caught:
            gemini.models.generate_content(model="gemini-2.0-flash", contents="hi")
        gemini.close()
        assert caught.value.code == 401
        with openai.OpenAI(base_url=f"{server.url}/v1", api_key=CLIENT_KEY, max_retries=0) as ok:
            assert ok.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}]).choices
        stderr = server.stderr()
    assert CLIENT_KEY not in stderr and "wrong" not in stderr


def test_an_injected_upstream_key_replaces_whatever_the_client_sent(tmp_path: Path) -> None:
    env = {"GUARDSTREAM_CLIENT_KEYS": CLIENT_KEY, "REAL_OPENAI_KEY": UPSTREAM_KEY}
    with serving("--upstream", "mock", "--auth-upstream-key-env", "openai=REAL_OPENAI_KEY", cwd=tmp_path, env=env) as s:
        httpx.post(f"{s.url}/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {CLIENT_KEY}"})
        mock_url = next(line.split(" at ")[1] for line in s.stderr().splitlines() if "built-in mock model at" in line)
        seen = httpx.get(f"{mock_url}/_mock/requests").json()[-1]["headers"]
    assert seen["authorization"] == f"Bearer {UPSTREAM_KEY}"


@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/chat/completions"), ("GET", "/v1/models")])
def test_an_upstream_error_quoting_the_injected_key_never_shows_it(tmp_path: Path, method: str, path: str) -> None:
    # The key matches no rule (it has no known shape): it is removed because it is the injected key.
    env = {"GUARDSTREAM_CLIENT_KEYS": CLIENT_KEY, "REAL_OPENAI_KEY": UPSTREAM_KEY}
    quoted = json.dumps({"error": {"message": f"Incorrect API key provided: {UPSTREAM_KEY}.", "type": "auth"}})
    script = {"status": 401, "error_body": quoted}
    headers = {**mock_headers(script), "authorization": f"Bearer {CLIENT_KEY}"}
    with serving("--upstream", "mock", "--auth-upstream-key-env", "openai=REAL_OPENAI_KEY", cwd=tmp_path, env=env) as s:
        answer = httpx.request(method, f"{s.url}{path}", json=CHAT if method == "POST" else None, headers=headers)
    assert answer.status_code == 401
    assert UPSTREAM_KEY not in answer.text and "Incorrect API key provided: [REDACTED:upstream-key]." in answer.text


def test_an_upstream_error_in_an_encoding_guardstream_cannot_read_is_not_relayed_with_a_key(tmp_path: Path) -> None:
    # httpx does not decode `compress`: the body would go out still gzip-compressed, the key unseen in it.
    env = {"GUARDSTREAM_CLIENT_KEYS": CLIENT_KEY, "REAL_OPENAI_KEY": UPSTREAM_KEY}
    quoted = json.dumps({"error": {"message": f"Incorrect API key provided: {UPSTREAM_KEY}.", "type": "auth"}})
    script = {
        "status": 401,
        "error_body": quoted,
        "content_encoding": "gzip",
        "headers": {"content-encoding": "compress"},
    }
    headers = {**mock_headers(script), "authorization": f"Bearer {CLIENT_KEY}"}
    with serving("--upstream", "mock", "--auth-upstream-key-env", "openai=REAL_OPENAI_KEY", cwd=tmp_path, env=env) as s:
        answer = httpx.get(f"{s.url}/v1/models", headers=headers)
    assert answer.status_code == 401 and "cannot read ('compress')" in answer.json()["error"]["message"]
    assert UPSTREAM_KEY not in answer.text


def test_without_an_injected_key_the_clients_own_is_forwarded(tmp_path: Path) -> None:
    with serving("--upstream", "mock", cwd=tmp_path) as s:
        httpx.post(
            f"{s.url}/v1/messages", json={"model": "m", "max_tokens": 5, "messages": []}, headers={"x-api-key": "own"}
        )
        mock_url = next(line.split(" at ")[1] for line in s.stderr().splitlines() if "built-in mock model at" in line)
        seen = httpx.get(f"{mock_url}/_mock/requests").json()[-1]["headers"]
    assert seen["x-api-key"] == "own"


def test_a_policy_gives_a_client_key_its_own_packs_and_behaviour(tmp_path: Path) -> None:
    (tmp_path / "guardstream.toml").write_text(
        '[moderation]\npacks = ["pii", "secrets"]\n'
        '[[policies]]\nclient_keys = ["team-a"]\npacks = ["pii"]\non_violation = "finish"\n',
        encoding="utf-8",
    )
    with serving("--upstream", "mock", cwd=tmp_path) as server:
        team_a = chat(server.url, {"reply": f"key {SECRET} and jane.doe@example.com ok"}, authorization="Bearer team-a")
        with openai.OpenAI(base_url=f"{server.url}/v1", api_key="other", max_retries=0) as other:
            with pytest.raises(openai.AuthenticationError):
                other.models.list()
    text = content(team_a.content)
    assert SECRET in text and "[REDACTED:email]" in text  # team A's packs have no secrets rules


# -- 4. reload ------------------------------------------------------------------------------------------


def test_sighup_reloads_rules_and_a_bad_pack_keeps_the_old_ones(tmp_path: Path) -> None:
    own = pack(tmp_path, "own", r"\bNIGHTJAR\b")
    (tmp_path / "guardstream.toml").write_text('[moderation]\npacks = ["secrets"]\n', encoding="utf-8")
    with serving("--upstream", "mock", cwd=tmp_path) as server:
        assert b"content_filter" not in chat(server.url, {"reply": "NIGHTJAR ok"}).content
        (tmp_path / "guardstream.toml").write_text(f'[moderation]\npacks = ["secrets", "{own}"]\n', encoding="utf-8")
        server.signal(signal.SIGHUP)
        server.wait_for_log("reload result=success")
        assert b"own.rule" in chat(server.url, {"reply": "NIGHTJAR ok"}).content
        own.write_text("[pack]\nname = broken", encoding="utf-8")
        server.signal(signal.SIGHUP)
        stderr = server.wait_for_log("reload result=failure")
        assert b"own.rule" in chat(server.url, {"reply": "NIGHTJAR ok"}).content
        metrics = httpx.get(f"{server.url}/metrics").text
    assert "invalid TOML" in stderr and str(own) in stderr
    assert 'guardstream_config_reloads_total{result="failure"} 1.0' in metrics


def test_the_admin_endpoint_reloads_with_the_admin_key_only(tmp_path: Path) -> None:
    env = {"GUARDSTREAM_ADMIN_KEY": "admin-secret"}
    with serving("--upstream", "mock", cwd=tmp_path, env=env) as server:
        assert httpx.post(f"{server.url}/-/reload").status_code == 401
        assert httpx.post(f"{server.url}/-/reload", headers={"authorization": "Bearer nope"}).status_code == 401
        reloaded = httpx.post(f"{server.url}/-/reload", headers={"authorization": "Bearer admin-secret"})
    assert reloaded.json() == {"reloaded": True}
    with serving("--upstream", "mock", cwd=tmp_path) as server:
        assert httpx.post(f"{server.url}/-/reload").status_code == 404


def test_a_stream_in_flight_finishes_on_the_rules_it_started_with(tmp_path: Path) -> None:
    own = pack(tmp_path, "own", r"\bNIGHTJAR\b")
    (tmp_path / "guardstream.toml").write_text('[moderation]\npacks = ["secrets"]\n', encoding="utf-8")
    with serving("--upstream", "mock", cwd=tmp_path) as server:
        results: list[httpx.Response] = []
        script = {"reply": "one two three NIGHTJAR four.", "chunk_chars": 4, "hold_after": 2, "hold_key": "inflight"}
        thread = threading.Thread(target=lambda: results.append(chat(server.url, script)))
        thread.start()
        time.sleep(0.5)
        (tmp_path / "guardstream.toml").write_text(f'[moderation]\npacks = ["secrets", "{own}"]\n', encoding="utf-8")
        server.signal(signal.SIGHUP)
        server.wait_for_log("reload result=success")
        mock_url = next(line.split(" at ")[1] for line in server.stderr().splitlines() if "mock model at" in line)
        httpx.post(f"{mock_url}/_mock/release/inflight")
        thread.join(timeout=20)
        after = chat(server.url, {"reply": "NIGHTJAR"})
    assert "NIGHTJAR" in content(results[0].content) and b"content_filter" not in results[0].content
    assert b"own.rule" in after.content


# -- 5. shutdown --------------------------------------------------------------------------------------


def test_sigterm_lets_streams_finish_then_ends_them_with_the_terminal_event(tmp_path: Path) -> None:
    with serving("--upstream", "mock", "--server-shutdown-grace", "1", cwd=tmp_path) as server:
        thread, results = chat_held_open(server.url)
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        thread.join(timeout=20)
        assert server.process.wait(timeout=15) == 0
        elapsed = time.monotonic() - started
        stderr = server.stderr()
    assert 0.8 < elapsed < 8
    assert b"the server is shutting down" in results[0] and results[0].endswith(b"}\n\n")
    assert "Traceback" not in stderr and "guardstream: stopped" in stderr


def test_a_second_signal_ends_streams_at_once(tmp_path: Path) -> None:
    with serving("--upstream", "mock", "--server-shutdown-grace", "30", cwd=tmp_path) as server:
        thread, results = chat_held_open(server.url)
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        time.sleep(0.3)
        server.signal(signal.SIGINT)
        thread.join(timeout=20)
        server.process.wait(timeout=15)
        elapsed = time.monotonic() - started
    assert elapsed < 10 and b"the server is shutting down" in results[0]


def test_readiness_turns_503_while_draining() -> None:
    from guardstream.config import Config, Upstreams
    from guardstream.proxy import create_app

    app = create_app(Config(upstreams=Upstreams("http://127.0.0.1:9", "http://127.0.0.1:9", "http://127.0.0.1:9")))
    transport = httpx.ASGITransport(app=app)

    async def probe() -> tuple[int, int, int]:
        async with httpx.AsyncClient(transport=transport, base_url="http://gs") as client:
            ready = (await client.get("/readyz")).status_code
            app.begin_shutdown(now=False)
            return ready, (await client.get("/readyz")).status_code, (await client.get("/healthz")).status_code

    import anyio

    assert anyio.run(probe) == (200, 503, 200)


# -- 6. slow rules ------------------------------------------------------------------------------------


def test_a_catastrophic_rule_is_refused_at_start_up_naming_it(tmp_path: Path) -> None:
    slow = pack(tmp_path, "slow", "(a+)+b")
    result = run_serve("--upstream", "mock", "--packs", f"secrets,{slow}", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "rule 'slow.rule'" in result.stderr and "backtracks catastrophically" in result.stderr
    assert "allow_slow_rules" in result.stderr


def test_a_slow_rule_allowed_anyway_ends_only_the_stream_that_trips_it(tmp_path: Path) -> None:
    slow = pack(tmp_path, "slow", "(a+)+b")
    args = ["--upstream", "mock", "--packs", f"secrets,{slow}", "--moderation-allow-slow-rules", "true"]
    with serving(*args, "--log-format", "json", cwd=tmp_path) as server:
        results: dict[str, httpx.Response] = {}
        attack = threading.Thread(target=lambda: results.update(bad=chat(server.url, {"reply": "a" * 3000 + "!"})))
        attack.start()
        benign = chat(server.url, {"reply": "A calm answer, nothing in it to hide.", "chunk_chars": 5})
        attack.join(timeout=30)
        metrics = httpx.get(f"{server.url}/metrics").text
        stderr = server.wait_for_log('"is_timeout":true')
    assert "warning: rule slow.rule: its regex backtracks catastrophically" in stderr
    assert b"took too long to decide (regex timeout)" in results["bad"].content
    assert b"Keep" not in benign.content and benign.status_code == 200 and b"[DONE]" in benign.content
    assert 'guardstream_rule_timeouts_total{rule="slow.rule"} 1.0' in metrics


def test_scan_reports_a_timeout_as_a_timeout(tmp_path: Path) -> None:
    import subprocess
    import sys

    slow = pack(tmp_path, "slow", "(a+)+b")
    result = subprocess.run(
        [sys.executable, "-m", "guardstream", "scan", "--packs", str(slow), "--json"],
        input="a" * 20000 + "!",
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["violations"][0]["timeout"] is True


# -- 8. bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "99999"], "--port has value '99999'. Not a valid int (0 to 65535)."),
        (["--server-max-body-bytes", "0"], "--server-max-body-bytes has value '0'. Not a valid int (>= 1)."),
        (["--upstream", "api.openai.com"], "Use an http:// or https:// URL, or 'mock'."),
        (["--timeouts-idle", "soon"], "--timeouts-idle has value 'soon'. Use a number of seconds above 0."),
        (["--moderation-on-violation", "explode"], "Use one of 'error', 'finish'."),
        (["--log-format", "xml"], "--log-format has value 'xml'. Use one of 'text', 'json'."),
        (["--packs", ""], "no rule pack is configured"),
        (["--packs", "nosuchpack"], "unknown built-in rule pack 'nosuchpack'"),
        (["--routes-passthrough", "/v1/models"], "is not 'METHOD /path'"),
        (["--auth-upstream-key-env", "openai=NOT_SET_ANYWHERE"], "NOT_SET_ANYWHERE for the openai key is not set"),
    ],
)
def test_every_bad_flag_is_one_clear_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_serve(*args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_settings_come_from_the_working_directorys_config_then_the_environment_then_flags(tmp_path: Path) -> None:
    (tmp_path / "guardstream.toml").write_text(
        '[moderation]\npacks = ["pii"]\n[timeouts]\nidle = 7\n', encoding="utf-8"
    )
    env = {"GUARDSTREAM_MODERATION_PACKS": "secrets,pii"}
    with serving("--upstream", "mock", "--packs", "secrets", cwd=tmp_path, env=env) as server:
        stderr = server.stderr()
    assert f"config {tmp_path / 'guardstream.toml'}" in stderr
    assert "packs secrets (" in stderr and "pii" not in stderr.split("packs secrets")[1].split("\n")[0]
    assert "upstreams openai=http://127.0.0.1:" in stderr


def test_a_direction_without_rules_is_warned_about(tmp_path: Path) -> None:
    with serving("--upstream", "mock", "--packs", "pii", cwd=tmp_path) as server:
        stderr = server.stderr()
    assert "warning: no rule in the packs applies to input text" in stderr


def test_no_packs_start_only_when_that_is_asked_for(tmp_path: Path) -> None:
    with serving("--upstream", "mock", "--packs", "", "--moderation-allow-no-rules", "true", cwd=tmp_path) as server:
        assert chat(server.url, {"reply": f"{SECRET}"}).status_code == 200


def test_an_oversized_body_is_a_413_in_the_callers_format(tmp_path: Path) -> None:
    with serving("--upstream", "mock", "--server-max-body-bytes", "1000", cwd=tmp_path) as server:
        big = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x" * 5000}]}
        answer = httpx.post(f"{server.url}/v1/messages", json=big)
    assert answer.status_code == 413 and answer.json()["error"]["type"] == "request_too_large"


def test_the_listening_line_comes_once_the_port_accepts(tmp_path: Path) -> None:
    with serving("--upstream", "mock", cwd=tmp_path, ready=False) as server:
        server.wait_for_log("listening on", timeout=60)
        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200


def test_the_start_lines_name_each_classifier_in_force(mock_server: MockModel) -> None:
    table = {"name": "omni", "kind": "openai-moderation", "url": f"{mock_server.url}/v1/moderations"}
    config = parse_config({"moderation": {"packs": []}, "classifiers": [table]})
    lines = start_lines(config, Guard(config))
    assert "classifiers: omni (openai-moderation, strict, output, on_error=block)" in lines
    assert not any(mock_server.url in line for line in lines)
