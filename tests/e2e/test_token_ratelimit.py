"""ai-token-ratelimit in real Envoy with 2 workers (envoy-configs/ai-token-ratelimit.yaml): 64
parallel OpenAI SDK clients, streaming and not, against one key must never be admitted more
tokens than the limit plus one maximum reservation; the `x-ratelimit-*` headers must say what
the buckets hold; streamed usage (reported or estimated) must be charged, and a client that
leaves mid-stream charged for what was produced. With the `rls` backend the same key is counted
by a small RateLimitService of our own (grpcio, started here) that Envoy reaches over HTTP/2, and
an unreachable service lets requests pass (fail open).

The `e2e` rule gives each value of the `x-e2e-key` header 3000 tokens a day (it refills 0.035
tokens a second, so within a test the buckets stand still); keys starting `tiny-` get 100.
Each test uses its own key, so its bucket is its own. llm-sim counts one token per word; the
plugin estimates a prompt as max(chars / 4, words) rounded up plus 4 tokens per message.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import anthropic
import openai
import pytest

import aigw_gateway as gateway
from conftest import start_gateway

LIMIT = 3000
TINY = 100
# Refill of a 3000-a-day bucket over a test (generously a minute): 2 tokens.
REFILL = 2
MODEL = "gpt-4o-mini"


@pytest.fixture(scope="module")
def rl_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gateway.Gateway]:
    yield from start_gateway("ai-token-ratelimit.yaml", tmp_path_factory)


def new_key(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def oai(gw: gateway.Gateway, key: str, key_header: str = "x-e2e-key",
        **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key="sk-e2e", max_retries=0,
                         timeout=30.0, default_headers={key_header: key, **headers})


def estimate(text: str) -> int:
    """The plugin's prompt estimate for one user message of ASCII `text`."""
    return max(math.ceil(len(text) / 4), len(text.split())) + 4


def remaining(headers: Any) -> int:
    return int(headers["x-ratelimit-remaining-tokens"])


def counters(gw: gateway.Gateway) -> dict[str, float]:
    """`aigw_ai_token_ratelimit_*` samples of /stats/prometheus, by name and labels."""
    status, text = gateway.http_get(f"{gw.admin_url}/stats/prometheus")
    assert status == 200
    out = {}
    for line in text.splitlines():
        m = re.match(r'^(aigw_ai_token_ratelimit_\w+(?:\{[^}]*\})?) (\S+)$', line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def chat_once(client: openai.OpenAI, prompt: str, max_tokens: int, stream: bool) -> int:
    """One request; the tokens the SDK got back as usage (the request was admitted)."""
    messages = [{"role": "user", "content": prompt}]
    if not stream:
        reply = client.chat.completions.create(model=MODEL, messages=messages,
                                               max_tokens=max_tokens)
        assert reply.usage is not None
        return reply.usage.total_tokens
    usage = None
    for chunk in client.chat.completions.create(model=MODEL, messages=messages,
                                                max_tokens=max_tokens, stream=True,
                                                stream_options={"include_usage": True}):
        usage = chunk.usage or usage
    assert usage is not None
    return usage.total_tokens


@pytest.mark.parametrize("charge_after", [False, True], ids=["reserve", "charge-after"])
def test_64_parallel_clients_on_one_key_are_admitted_at_most_the_limit(
        rl_gateway: gateway.Gateway, charge_after: bool) -> None:
    """64 clients, 4 requests each, on one key of 3000 tokens. The `e2e-after` rule charges
    after the response (as Higress, LiteLLM and the others do) on the same workload: it always
    overshoots, since it refuses only once the bucket is already over."""
    key = new_key("hammer")
    key_header = "x-e2e-after-key" if charge_after else "x-e2e-key"
    prompt = "one two three four five six seven eight"
    max_tokens = 40
    reservation = estimate(prompt) + max_tokens
    admitted_tokens = 0
    admitted = 0
    refusals: list[openai.RateLimitError] = []
    lock = threading.Lock()

    def client_loop(i: int) -> None:
        nonlocal admitted_tokens, admitted
        # 100 ms before each answer (as a real model takes): many requests are in flight.
        with oai(rl_gateway, key, key_header, **{"x-sim-latency-ms": "100"}) as client:
            for n in range(4):
                try:
                    used = chat_once(client, prompt, max_tokens, stream=(i + n) % 2 == 0)
                except openai.RateLimitError as e:
                    with lock:
                        refusals.append(e)
                    continue
                with lock:
                    admitted_tokens += used
                    admitted += 1

    with ThreadPoolExecutor(max_workers=64) as pool:
        list(pool.map(client_loop, range(64)))

    mode = "charge after" if charge_after else "reserve"
    print(f"{mode}: admitted {admitted} requests, {admitted_tokens} tokens (limit {LIMIT}, "
          f"overshoot {max(admitted_tokens - LIMIT, 0)}); {len(refusals)} refused")
    assert refusals, "the limit never acted"
    if charge_after:
        # Refusals start only once more than the limit was charged.
        assert admitted_tokens > LIMIT, admitted_tokens
        return
    assert admitted > 0
    # The guarantee: what was admitted never exceeds the limit plus one maximum reservation
    # (here it holds exactly, since llm-sim never uses more than the reservation).
    assert admitted_tokens <= LIMIT + REFILL + reservation, (admitted_tokens, admitted)
    # Unused reservations came back: far more was admitted than 3000 / reservation requests.
    assert admitted > LIMIT // reservation, admitted
    for e in refusals[:10]:
        h = e.response.headers
        assert e.response.status_code == 429
        assert int(h["retry-after"]) >= 1
        assert int(h["x-ratelimit-remaining-tokens"]) < reservation
        assert h["x-ratelimit-limit-tokens"] == str(LIMIT)
        assert e.response.json()["error"]["type"] == "rate_limit_error"
    # Reconciliation is exact: the bucket holds the limit minus what the clients were told
    # they used (a probe's headers say so, admitted or refused).
    probe = oai(rl_gateway, key).chat.completions.with_raw_response
    try:
        raw = probe.create(model=MODEL, max_tokens=1,
                           messages=[{"role": "user", "content": "probe"}])
        left = remaining(raw.headers) + estimate("probe") + 1
    except openai.RateLimitError as e:
        left = remaining(e.response.headers)
    assert LIMIT - admitted_tokens <= left <= LIMIT - admitted_tokens + REFILL, \
        (left, admitted_tokens)
    got = counters(rl_gateway)
    assert got['aigw_ai_token_ratelimit_requests_total{outcome="refused"}'] >= len(refusals)
    assert got['aigw_ai_token_ratelimit_refused_total{rule="e2e"}'] >= len(refusals)


def test_an_admitted_answer_carries_the_rate_limit_headers(rl_gateway: gateway.Gateway) -> None:
    raw = oai(rl_gateway, new_key("headers")).chat.completions.with_raw_response.create(
        model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Hello there"}])
    reply = raw.parse()
    assert reply.choices[0].message.content == "sim: Hello there"
    h = raw.headers
    reserved = estimate("Hello there") + 50
    assert h["x-ratelimit-limit-tokens"] == str(LIMIT)
    assert remaining(h) == LIMIT - reserved
    # 57 tokens at 3000 a day refill in 1641.6 s.
    assert reserved == 57 and h["x-ratelimit-reset-tokens"] == "27m21.6s"
    assert h["x-ratelimit-limit-requests"] == "100000"
    assert h["x-ratelimit-remaining-requests"] == "99999"
    assert "retry-after" not in h


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_the_responses_api_is_limited_and_charged_its_usage(rl_gateway: gateway.Gateway,
                                                            stream: bool) -> None:
    key = new_key("responses")
    client = oai(rl_gateway, key)
    if stream:
        usage = None
        for event in client.responses.create(model=MODEL, input="Hello there",
                                             max_output_tokens=50, stream=True):
            if event.type == "response.completed":
                usage = event.response.usage
    else:
        raw = client.responses.with_raw_response.create(model=MODEL, input="Hello there",
                                                        max_output_tokens=50)
        assert remaining(raw.headers) < LIMIT, "a reservation was taken"
        usage = raw.parse().usage
    assert usage is not None
    # The next request's headers show what was charged: the answer's usage, not the reservation.
    raw = client.responses.with_raw_response.create(model=MODEL, input="Hello there",
                                                    max_output_tokens=50)
    left = remaining(raw.headers) + estimate("Hello there") + 50
    assert LIMIT - left <= usage.total_tokens + REFILL
    assert LIMIT - left >= usage.total_tokens - REFILL


@pytest.mark.parametrize("include_usage", [True, False], ids=["usage", "estimated"])
def test_a_stream_is_charged_its_usage_or_its_estimate(rl_gateway: gateway.Gateway,
                                                       include_usage: bool) -> None:
    client = oai(rl_gateway, new_key("stream"))
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    text, usage = "", None
    for chunk in client.chat.completions.create(
            model=MODEL, max_tokens=50, stream=True,
            messages=[{"role": "user", "content": "Hello there"}], **options):
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        usage = chunk.usage or usage
    assert text == "sim: Hello there"
    if include_usage:
        assert usage is not None
        charged = usage.total_tokens
    else:
        # The prompt estimate (7) and the answer's ("sim: Hello there": 16 chars, 4 tokens).
        charged = estimate("Hello there") + 4
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Hello there"}])
    expected = LIMIT - charged - (estimate("Hello there") + 50)
    assert expected <= remaining(raw.headers) <= expected + REFILL


def charged_total(gw: gateway.Gateway) -> float:
    return counters(gw).get('aigw_ai_token_ratelimit_tokens_total{kind="charged"}', 0.0)


def test_a_client_that_leaves_mid_stream_is_charged_for_what_was_produced(
        rl_gateway: gateway.Gateway) -> None:
    key = new_key("leaver")
    before = charged_total(rl_gateway)
    # Two tokens a second: the answer's three tokens take a second and a half.
    client = oai(rl_gateway, key, **{"x-sim-tokens-per-second": "2"})
    stream = client.chat.completions.create(
        model=MODEL, max_tokens=200, stream=True,
        messages=[{"role": "user", "content": "Hello there"}])
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    stream.close()
    deadline = time.monotonic() + 15
    while charged_total(rl_gateway) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert charged_total(rl_gateway) > before, "the cut stream was settled"
    raw = oai(rl_gateway, key).chat.completions.with_raw_response.create(
        model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Hello there"}])
    left = remaining(raw.headers) + estimate("Hello there") + 50
    # Charged the prompt estimate and 1 to 4 estimated output tokens: neither nothing (as if
    # released) nor the 207-token reservation.
    charged = LIMIT - left
    assert estimate("Hello there") + 1 <= charged + REFILL
    assert charged <= estimate("Hello there") + 4, charged


def test_key_values_beyond_max_keys_share_a_bucket_stricter_never_looser(
        rl_gateway: gateway.Gateway) -> None:
    # `e2e-slots` keeps counters for one value (`maxKeys: 1`), 300 tokens a day. The first value
    # spends over a hundred of them; a second value, whose reservation alone would fit, shares
    # that bucket while the first value's record is in use: refused.
    prompt = " ".join(["word"] * 100)
    first = oai(rl_gateway, new_key("slot"), key_header="x-e2e-slot")
    raw = first.chat.completions.with_raw_response.create(
        model=MODEL, max_tokens=150, messages=[{"role": "user", "content": prompt}])
    used = raw.parse().usage.total_tokens
    assert used + estimate(prompt) + 150 > 300 + REFILL, used
    second = oai(rl_gateway, new_key("slot"), key_header="x-e2e-slot")
    with pytest.raises(openai.RateLimitError) as refused:
        second.chat.completions.create(
            model=MODEL, max_tokens=150, messages=[{"role": "user", "content": prompt}])
    headers = refused.value.response.headers
    assert int(headers["x-ratelimit-limit-tokens"]) == 300
    assert int(headers["x-ratelimit-remaining-tokens"]) <= 300 - used + REFILL
    # What the second value asks for fits an empty bucket: only the sharing refused it.
    assert estimate(prompt) + 150 <= 300


def test_anthropic_clients_are_refused_in_anthropic_s_shape(rl_gateway: gateway.Gateway) -> None:
    client = anthropic.Anthropic(base_url=rl_gateway.base_url, api_key="sk-e2e", max_retries=0,
                                 timeout=30.0, default_headers={"x-e2e-key": new_key("tiny")})
    messages = [{"role": "user", "content": "Hello there"}]
    # 7 + 90 = 97 of 100 reserved; the answer uses 2 + 3, so 95 are left.
    first = client.messages.create(model="claude-haiku-4-5", max_tokens=90, messages=messages)
    assert first.usage.input_tokens + first.usage.output_tokens == 5
    with pytest.raises(anthropic.RateLimitError) as refused:
        client.messages.create(model="claude-haiku-4-5", max_tokens=90, messages=messages)
    r = refused.value.response
    assert r.status_code == 429
    assert r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "rate_limit_error"
    assert r.headers["x-ratelimit-remaining-tokens"] == str(TINY - 5)
    # 2 tokens short at 100 a day: 1728 s.
    assert r.headers["retry-after"] == "1728"
    # A request that can never fit says so, without Retry-After.
    with pytest.raises(anthropic.RateLimitError) as never:
        client.messages.create(model="claude-haiku-4-5", max_tokens=500, messages=messages)
    assert "lower max_tokens" in never.value.response.json()["error"]["message"]
    assert "retry-after" not in never.value.response.headers


def test_a_body_that_is_not_json_is_answered_400_in_openai_s_shape(
        rl_gateway: gateway.Gateway) -> None:
    req = urllib.request.Request(
        f"{rl_gateway.base_url}/v1/chat/completions", data=b"{not json", method="POST",
        headers={"content-type": "application/json", "x-e2e-key": new_key("bad")})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(urllib.error.HTTPError) as err:
        opener.open(req, timeout=10)
    assert err.value.code == 400
    body = json.loads(err.value.read())
    assert body["error"]["type"] == "invalid_request_error"



def admin(gw: gateway.Gateway, method: str, query: str = "", body: dict[str, Any] | None = None,
          key: str = "e2e-admin-key") -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{gw.base_url}/aigw/quota{query}", data=data, method=method,
                                 headers={"authorization": f"Bearer {key}",
                                          "content-type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_a_quota_set_by_an_admin_is_spent_by_requests_and_then_refused(
        rl_gateway: gateway.Gateway) -> None:
    team = new_key("team")
    client = oai(rl_gateway, team, "x-e2e-quota")
    messages = [{"role": "user", "content": "Hello there"}]

    def ask() -> openai.types.CompletionUsage:
        # 7 + 90 = 97 tokens reserved; llm-sim uses 5.
        reply = client.chat.completions.create(model=MODEL, max_tokens=90, messages=messages)
        assert reply.usage is not None
        return reply.usage

    with pytest.raises(openai.RateLimitError) as empty:
        ask()
    assert empty.value.response.json()["error"]["code"] == "insufficient_quota"
    assert admin(rl_gateway, "POST", body={"key": team, "set": 100}, key="wrong")[0] == 401
    assert admin(rl_gateway, "POST", body={"key": team, "set": 100}) \
        == (200, {"key": team, "remaining": 100})
    used = ask().total_tokens
    status, got = admin(rl_gateway, "GET", f"?key={team}")
    assert (status, got["remaining"]) == (200, 100 - used)
    with pytest.raises(openai.RateLimitError) as spent:
        ask()
    assert spent.value.response.json()["error"]["code"] == "insufficient_quota"
    assert "retry-after" not in spent.value.response.headers
    assert admin(rl_gateway, "POST", body={"key": team, "add": 1000}) \
        == (200, {"key": team, "remaining": 1100 - used})
    ask()

# ---- the rls backend: a small RateLimitService of our own, reached over gRPC ----

# The service runs in its own Python process: grpcio's threads must not live in this one, which
# forks Envoy and llm-sim (a fork under a running gRPC server can abort the child).
RLS_SERVER = r"""
import json, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
import grpc

port_file, log_file = sys.argv[1], sys.argv[2]
UNIT_SECONDS = {1: 1, 2: 60, 3: 3600, 4: 86400}

def varint(data, i):
    value, shift = 0, 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i

def fields(data):
    out, i = [], 0
    while i < len(data):
        key, i = varint(data, i)
        if key & 7 == 0:
            value, i = varint(data, i)
        elif key & 7 == 2:
            n, i = varint(data, i)
            value, i = data[i:i + n], i + n
        else:
            raise ValueError("wire type %d" % (key & 7))
        out.append((key >> 3, value))
    return out

def enc_varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)

def field(number, value):
    if isinstance(value, int):
        return enc_varint(number << 3) + enc_varint(value)
    return enc_varint(number << 3 | 2) + enc_varint(len(value)) + value

lock = threading.Lock()
windows = {}
log = open(log_file, "a", encoding="utf-8")

def should_rate_limit(request, context):
    # Fixed windows: each descriptor counts hits_addend against its limit override; a request
    # is admitted only if every descriptor has room, and then counted in all of them.
    descriptors = []
    for number, value in fields(request):
        if number != 2:
            continue
        d = {"entries": [], "limit": 0, "unit": 0, "hits": 1}
        for f, v in fields(value):
            if f == 1:
                entry = dict(fields(v))
                d["entries"].append([entry[1].decode(), entry[2].decode()])
            elif f == 2:
                limit = dict(fields(v))
                d["limit"], d["unit"] = limit.get(1, 0), limit.get(2, 0)
            elif f == 3:
                d["hits"] = dict(fields(v)).get(1, 0)
        descriptors.append(d)
    if any(value.startswith("slow-") for d in descriptors for _, value in d["entries"]):
        time.sleep(1.0)  # a service that answers too late
    now = time.time()
    with lock:
        log.write(json.dumps(descriptors) + "\n")
        log.flush()
        rows = []
        for d in descriptors:
            unit = UNIT_SECONDS[d["unit"]]
            start = now - now % unit
            key = (json.dumps(d["entries"]), unit)
            began, count = windows.get(key, (start, 0))
            if began != start:
                count = 0
            rows.append((key, start, unit, count, count + d["hits"] > d["limit"]))
        over = any(row[4] for row in rows)
        statuses = b""
        for d, (key, start, unit, count, too_many) in zip(descriptors, rows):
            if not over:
                count += d["hits"]
                windows[key] = (start, count)
            reset = start + unit - now
            status = (field(1, 2 if too_many else 1)
                      + field(2, field(1, d["limit"]) + field(2, d["unit"]))
                      + field(3, max(d["limit"] - count, 0))
                      + field(4, field(1, int(reset)) + field(2, int(reset % 1 * 1e9))))
            statuses += field(2, status)
    return field(1, 2 if over else 1) + statuses

handler = grpc.method_handlers_generic_handler(
    "envoy.service.ratelimit.v3.RateLimitService",
    {"ShouldRateLimit": grpc.unary_unary_rpc_method_handler(should_rate_limit)})
server = grpc.server(ThreadPoolExecutor(max_workers=8), handlers=[handler])
port = server.add_insecure_port("127.0.0.1:0")
server.start()
with open(port_file + ".tmp", "w") as f:
    f.write(str(port))
import os
os.replace(port_file + ".tmp", port_file)
server.wait_for_termination()
"""


class RateLimitService:
    """The RateLimitService process: its port, and the descriptors of every call it got."""

    def __init__(self, workdir: Path) -> None:
        self.log = workdir / "rls-calls.jsonl"
        port_file = workdir / "rls.port"
        self.stderr = open(workdir / "rls.log", "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RLS_SERVER, str(port_file), str(self.log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr)
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert self.proc.poll() is None, (workdir / "rls.log").read_text()
            assert time.monotonic() < deadline, "the RateLimitService did not start"
            time.sleep(0.05)
        self.port = int(port_file.read_text())

    def calls(self) -> list[list[dict[str, Any]]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.stderr.close()


@pytest.fixture(scope="module")
def rls_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RateLimitService]:
    service = RateLimitService(tmp_path_factory.mktemp("rls"))
    try:
        yield service
    finally:
        service.stop()


def rls_variant(workdir: Any, port: int, timeout_ms: int = 2000, extra: str = "") -> str:
    """envoy-configs/ai-token-ratelimit.yaml with the rls backend (waiting `timeout_ms`, `extra`
    config fields) and an HTTP/2 cluster to 127.0.0.1:`port`."""
    text = (gateway.ENVOY_CONFIGS / "ai-token-ratelimit.yaml").read_text(encoding="utf-8")
    # Quotas need the local backend: the variant has none.
    text, quotas = re.subn(r'\s*"quota": \{[^}]*\},', "", text)
    assert quotas == 1
    # Charging after the answer needs the local backend too: the variant has no such rule.
    text, after = re.subn(r',\s*\{"name": "e2e-after"[^}]*\}\]\}', "", text)
    assert after == 1
    anchor = '"defaultOutputTokens": 256'
    assert text.count(anchor) == 1
    text = text.replace(anchor, anchor + ', "backend": "rls", "rls": {"cluster": "ratelimit", '
                        f'"domain": "aigw", "timeoutMs": {timeout_ms}}}{extra}')
    text += f"""  - name: ratelimit
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {{}}
    load_assignment:
      cluster_name: ratelimit
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{address: 127.0.0.1, port_value: {port}}}
"""
    path = workdir / "ai-token-ratelimit-rls.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def rls_gateway(tmp_path_factory: pytest.TempPathFactory,
                rls_service: RateLimitService) -> Iterator[gateway.Gateway]:
    template = rls_variant(tmp_path_factory.mktemp("rls-template"), rls_service.port)
    yield from start_gateway(template, tmp_path_factory)


def test_with_the_rls_backend_parallel_clients_are_admitted_at_most_the_limit(
        rls_gateway: gateway.Gateway, rls_service: RateLimitService) -> None:
    key = new_key("rls")
    prompt = "one two three four five six seven eight"
    reservation = estimate(prompt) + 40
    admitted: list[int] = []
    refusals: list[openai.RateLimitError] = []
    lock = threading.Lock()

    def client_loop(i: int) -> None:
        with oai(rls_gateway, key) as client:
            for n in range(4):
                try:
                    used = chat_once(client, prompt, 40, stream=(i + n) % 2 == 0)
                except openai.RateLimitError as e:
                    with lock:
                        refusals.append(e)
                    continue
                with lock:
                    admitted.append(used)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(client_loop, range(16)))
    # 64 requests of 54 reserved tokens against 3000: at most 55 fit in the day's window.
    assert refusals, "the service never refused"
    assert len(admitted) * reservation <= LIMIT, len(admitted)
    assert sum(admitted) <= LIMIT
    for e in refusals[:5]:
        assert e.response.status_code == 429
        assert int(e.response.headers["retry-after"]) >= 1
        assert e.response.json()["error"]["type"] == "rate_limit_error"
    mine = [c for c in rls_service.calls()
            if any(["header:x-e2e-key", key] in d["entries"] for d in c)]
    assert len(mine) == 64, "one ShouldRateLimit per request"
    e2e = [d for d in mine[0] if ["rule", "e2e"] in d["entries"]]
    assert [(dict(d["entries"])["measure"], d["hits"], d["limit"], d["unit"]) for d in e2e] \
        == [("total", reservation, LIMIT, 4), ("requests", 1, 100000, 4)]


def test_with_the_rls_backend_unreachable_requests_pass_by_default(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    dead_port = gateway.free_ports(1)[0]
    template = rls_variant(tmp_path_factory.mktemp("rls-dead"), dead_port)
    started = start_gateway(template, tmp_path_factory)
    gw = next(started)
    try:
        raw = oai(gw, new_key("dead")).chat.completions.with_raw_response.create(
            model=MODEL, max_tokens=20, messages=[{"role": "user", "content": "Hello there"}])
        assert raw.parse().choices[0].message.content == "sim: Hello there"
        assert "x-ratelimit-remaining-tokens" not in raw.headers, "nothing was counted"
        got = counters(gw)
        assert got['aigw_ai_token_ratelimit_requests_total{outcome="backend_error"}'] >= 1
    finally:
        started.close()


def test_with_the_rls_backend_a_slow_service_fails_closed_when_so_configured(
        tmp_path_factory: pytest.TempPathFactory, rls_service: RateLimitService) -> None:
    template = rls_variant(tmp_path_factory.mktemp("rls-slow"), rls_service.port,
                           timeout_ms=200, extra=', "failureMode": "closed"')
    started = start_gateway(template, tmp_path_factory)
    gw = next(started)
    try:
        client = oai(gw, new_key("slow"))
        with pytest.raises(openai.APIStatusError) as refused:
            client.chat.completions.create(
                model=MODEL, max_tokens=20, messages=[{"role": "user", "content": "Hello there"}])
        assert refused.value.status_code == 503
        assert refused.value.response.json()["error"]["type"] == "server_error"
        # The service answers in time for other keys: the same gateway admits them.
        fine = oai(gw, new_key("fast")).chat.completions.create(
            model=MODEL, max_tokens=20, messages=[{"role": "user", "content": "Hello there"}])
        assert fine.choices[0].message.content == "sim: Hello there"
        got = counters(gw)
        assert got['aigw_ai_token_ratelimit_requests_total{outcome="backend_error"}'] >= 1
    finally:
        started.close()
