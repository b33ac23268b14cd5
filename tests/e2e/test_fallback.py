"""ai-proxy's retry and fallback in real Envoy, driven by the unmodified OpenAI and Anthropic SDKs.

envoy-configs/ai-proxy.yaml routes `gpt-4o-fallback` to the provider `openai-down`, whose cluster
has nothing listening (every attempt is Envoy's own connect-failure 503), with the fallback target
`anthropic` / `claude-haiku-4-5`; and `gpt-4o-retry` to llm-sim's `openai`, falling back to
`gpt-4o-mini` there, then to Anthropic (`gpt-4o-reset` likewise, with a breaker of its own). The
breakers open after 3 failures, so later tests on a target may find it open. llm-sim fails a request on demand (`x-sim-error-status`,
`x-sim-latency-ms` past the 3 s attempt timeout); the fallback call carries only the provider's
headers, so the next target answers. What llm-sim received shows which target served the request.
"""

from __future__ import annotations

import json
import time
from typing import Iterator

import anthropic
import openai
import pytest

import aigw_gateway as gateway
from conftest import Sim, start_gateway

PROMPT = "Hello from the fallback tests"
REPLY = "sim: Hello from the fallback tests"


@pytest.fixture(scope="module")
def fallback_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gateway.Gateway]:
    """Envoy with ai-proxy alone (envoy-configs/ai-proxy.yaml)."""
    yield from start_gateway("ai-proxy.yaml", tmp_path_factory)


@pytest.fixture(scope="module")
def sim(fallback_gateway: gateway.Gateway) -> Sim:
    return Sim(fallback_gateway.sim_url)


@pytest.fixture(autouse=True)
def fresh(sim: Sim) -> None:
    sim.clear()


@pytest.fixture()
def oai(fallback_gateway: gateway.Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{fallback_gateway.base_url}/v1", api_key="client-own-key", max_retries=0)


@pytest.fixture()
def claude(fallback_gateway: gateway.Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fallback_gateway.base_url, api_key="client-own-key", max_retries=0)


def chat(oai: openai.OpenAI, model: str, **extra: object):  # type: ignore[no-untyped-def]
    return oai.chat.completions.with_raw_response.create(
        model=model, max_tokens=50, messages=[{"role": "user", "content": PROMPT}], **extra)


def test_a_provider_that_is_down_is_replaced_by_the_fallback_target_translated(oai: openai.OpenAI, sim: Sim) -> None:
    raw = chat(oai, "gpt-4o-fallback")
    r = raw.parse()
    assert r.choices[0].message.content == REPLY
    assert r.choices[0].finish_reason == "stop"
    assert raw.headers.get("x-aigw-upstream-model") == "claude-haiku-4-5"
    assert raw.headers.get("x-aigw-attempts") == "2"
    seen = sim.only_request()
    assert seen["path"] == "/v1/messages"
    assert seen["headers"]["x-api-key"] == "sk-sim-anthropic"
    assert seen["body"]["model"] == "claude-haiku-4-5"
    assert "client-own-key" not in json.dumps(seen["headers"])


def test_a_streaming_request_falls_back_and_the_client_reads_one_clean_stream(oai: openai.OpenAI, sim: Sim) -> None:
    stream = oai.chat.completions.create(model="gpt-4o-fallback", max_tokens=50, stream=True,
                                         messages=[{"role": "user", "content": PROMPT}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert sim.only_request()["path"] == "/v1/messages"


def test_an_anthropic_client_falls_back_to_an_anthropic_target_untranslated(claude: anthropic.Anthropic, sim: Sim) -> None:
    raw = claude.messages.with_raw_response.create(model="gpt-4o-fallback", max_tokens=50,
                                                   messages=[{"role": "user", "content": PROMPT}])
    m = raw.parse()
    assert m.content[0].text == REPLY  # type: ignore[union-attr]
    assert m.stop_reason == "end_turn"
    assert raw.headers.get("x-aigw-upstream-model") == "claude-haiku-4-5"


def test_after_its_failures_the_breaker_sends_requests_straight_to_the_fallback(oai: openai.OpenAI, sim: Sim) -> None:
    # The breaker of openai-down opens after 3 failures (shared by both workers); the tests above
    # made some of them, this one makes the rest.
    for _ in range(4):
        sim.clear()
        raw = chat(oai, "gpt-4o-fallback")
        assert raw.parse().choices[0].message.content == REPLY
        if raw.headers.get("x-aigw-attempts") is None:
            break
    else:
        pytest.fail("the breaker never opened")
    assert raw.headers.get("x-aigw-upstream-model") == "claude-haiku-4-5"
    assert sim.only_request()["path"] == "/v1/messages"


def test_a_5xx_from_the_provider_is_retried_on_the_next_target(oai: openai.OpenAI, sim: Sim) -> None:
    raw = chat(oai, "gpt-4o-retry", extra_headers={"x-sim-error-status": "503"})
    assert raw.parse().choices[0].message.content == REPLY
    assert raw.headers.get("x-aigw-attempts") == "2"
    assert raw.headers.get("x-aigw-upstream-model") == "gpt-4o-mini"
    first, second = sim.requests()
    assert first["headers"].get("x-sim-error-status") == "503"
    assert first["body"]["model"] == "gpt-4o-retry"
    assert second["body"]["model"] == "gpt-4o-mini"
    assert second["headers"]["authorization"] == "Bearer sk-sim-openai"


def test_a_429_with_retry_after_falls_back_to_the_next_target(oai: openai.OpenAI, sim: Sim) -> None:
    raw = chat(oai, "gpt-4o-reset", extra_headers={"x-sim-error-status": "429", "x-sim-retry-after": "7"})
    assert raw.parse().choices[0].message.content == REPLY
    assert raw.headers.get("x-aigw-attempts") == "2"
    assert raw.headers.get("retry-after") is None, "the failed answer's headers are not the client's"
    first, second = sim.requests()
    assert first["headers"].get("x-sim-retry-after") == "7"
    assert second["body"]["model"] == "gpt-4o-mini"


def test_a_provider_slower_than_the_attempt_timeout_is_replaced(oai: openai.OpenAI, sim: Sim) -> None:
    raw = chat(oai, "gpt-4o-retry", extra_headers={"x-sim-latency-ms": "6000"})
    assert raw.parse().choices[0].message.content == REPLY
    assert raw.headers.get("x-aigw-attempts") == "2"
    assert raw.headers.get("x-aigw-upstream-model") == "gpt-4o-mini"


def test_a_client_error_is_not_retried(oai: openai.OpenAI, sim: Sim) -> None:
    with pytest.raises(openai.BadRequestError):
        chat(oai, "gpt-4o-retry", extra_headers={"x-sim-error-status": "400"})
    assert len(sim.requests()) == 1


def test_fallbacks_are_counted_in_prometheus(fallback_gateway: gateway.Gateway, oai: openai.OpenAI) -> None:
    chat(oai, "gpt-4o-retry", extra_headers={"x-sim-error-status": "500"})
    status, text = gateway.http_get(f"{fallback_gateway.admin_url}/stats/prometheus")
    assert status == 200
    assert any(line.startswith("aigw_ai_proxy_fallbacks") and not line.endswith(" 0")
               for line in text.splitlines()), text[:2000]


def test_a_reset_before_the_answer_is_retried_on_the_next_target(oai: openai.OpenAI, sim: Sim) -> None:
    raw = chat(oai, "gpt-4o-reset", extra_headers={"x-sim-reset": "true"})
    assert raw.parse().choices[0].message.content == REPLY
    assert raw.headers.get("x-aigw-attempts") == "2"
    assert raw.headers.get("x-aigw-upstream-model") == "gpt-4o-mini"


def test_a_stream_cut_after_its_first_bytes_reached_the_client_is_not_retried(oai: openai.OpenAI, sim: Sim) -> None:
    # Bytes went out: a second answer would make two partial ones. The client gets an error event.
    with pytest.raises(Exception) as raised:
        chunks = list(oai.chat.completions.create(
            model="gpt-4o-retry", stream=True, extra_headers={"x-sim-truncate-after": "2"},
            messages=[{"role": "user", "content": "one two three four five six seven"}]))
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finishes, "the stream ended without a finish reason and without an error"
    assert not isinstance(raised.value, AssertionError), raised.value
    assert len(sim.requests()) == 1


def test_a_stream_slower_than_the_attempt_timeout_is_not_cut(oai: openai.OpenAI, sim: Sim) -> None:
    # attemptTimeoutMs (3 s) bounds requests that do not stream; a stream's first token may come later.
    stream = oai.chat.completions.create(model="gpt-4o-retry", max_tokens=50, stream=True,
                                         extra_headers={"x-sim-ttft-ms": "3500"},
                                         messages=[{"role": "user", "content": PROMPT}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == REPLY
    assert len(sim.requests()) == 1


@pytest.fixture(scope="module")
def chain_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gateway.Gateway]:
    """The full chain (envoy-configs/full-chain.yaml, what `make run` starts)."""
    yield from start_gateway("full-chain.yaml", tmp_path_factory)


def test_make_run_shows_a_fallback_and_the_auto_model_through_the_whole_chain(chain_gateway: gateway.Gateway) -> None:
    client = openai.OpenAI(base_url=f"{chain_gateway.base_url}/v1", api_key="any-key", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-fallback", messages=[{"role": "user", "content": "Hello!"}])
    assert raw.parse().choices[0].message.content.startswith("sim: ")
    assert raw.headers.get("x-aigw-attempts") == "2"
    assert raw.headers.get("x-aigw-upstream-model") == "claude-haiku-4-5"
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Fix: ```print(1/0)```"}])
    assert raw.parse().choices[0].message.content.startswith("sim: ")
    assert raw.headers.get("x-aigw-upstream-model") == "claude-haiku-4-5"


def usage_records(gw: gateway.Gateway, consumer: str) -> list[dict]:  # type: ignore[type-arg]
    """ai-usage-stats' audit records of `consumer` (its `ai-usage-stats: <json>` log lines)."""
    assert gw.envoy is not None
    deadline = time.monotonic() + 5.0
    while True:
        out = []
        for line in gw.envoy.log_tail(10_000_000).splitlines():
            at = line.find("ai-usage-stats: {")
            if at >= 0:
                rec = json.loads(line[at + len("ai-usage-stats: "):])
                if rec.get("consumer") == consumer:
                    out.append(rec)
        if out or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


def test_usage_stats_records_the_attempts_and_the_model_that_answered(chain_gateway: gateway.Gateway) -> None:
    client = openai.OpenAI(base_url=f"{chain_gateway.base_url}/v1", api_key="any-key", max_retries=0,
                           default_headers={"x-aigw-consumer": "team-fallback"})
    client.chat.completions.create(model="gpt-4o-fallback", messages=[{"role": "user", "content": "Hello!"}])
    (rec,) = usage_records(chain_gateway, "team-fallback")
    assert rec["attempts"] == 2, rec
    assert rec["requestModel"] == "claude-haiku-4-5", rec
    auto = openai.OpenAI(base_url=f"{chain_gateway.base_url}/v1", api_key="any-key", max_retries=0,
                         default_headers={"x-aigw-consumer": "team-auto"})
    auto.chat.completions.create(model="auto", messages=[{"role": "user", "content": "Hello!"}])
    (rec,) = usage_records(chain_gateway, "team-auto")
    assert rec["requestModel"] == "gpt-4o-mini", rec
