"""ai-token-ratelimit in real Envoy with 2 workers (envoy-configs/ai-token-ratelimit.yaml): 64
parallel OpenAI SDK clients, streaming and not, against one key must never be admitted more
tokens than the limit plus one maximum reservation; the `x-ratelimit-*` headers must say what
the buckets hold; streamed usage (reported or estimated) must be charged, and a client that
leaves mid-stream charged for what was produced.

The `e2e` rule gives each value of the `x-e2e-key` header 3000 tokens a day (it refills 0.035
tokens a second, so within a test the buckets stand still); keys starting `tiny-` get 100.
Each test uses its own key, so its bucket is its own. llm-sim counts one token per word; the
plugin estimates a prompt as max(chars / 4, words) rounded up plus 4 tokens per message.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
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


def oai(gw: gateway.Gateway, key: str, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key="sk-e2e", max_retries=0,
                         timeout=30.0, default_headers={"x-e2e-key": key, **headers})


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


def test_64_parallel_clients_on_one_key_are_admitted_at_most_the_limit(
        rl_gateway: gateway.Gateway) -> None:
    key = new_key("hammer")
    prompt = "one two three four five six seven eight"
    max_tokens = 40
    reservation = estimate(prompt) + max_tokens
    admitted_tokens = 0
    admitted = 0
    refusals: list[openai.RateLimitError] = []
    lock = threading.Lock()

    def client_loop(i: int) -> None:
        nonlocal admitted_tokens, admitted
        client = oai(rl_gateway, key)
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

    print(f"admitted {admitted} requests, {admitted_tokens} tokens (limit {LIMIT}); "
          f"{len(refusals)} refused")
    assert refusals, "the limit never acted"
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
