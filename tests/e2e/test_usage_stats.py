"""ai-usage-stats in real Envoy (envoy-configs/ai-usage-stats.yaml): the OpenAI and Anthropic SDKs
call llm-sim through the plugin, streaming and not, and `/stats/prometheus` must show the exact
token counts the SDK got back, the cost from the configured prices, errors by type and the
latency histograms, with the provider / model / route / consumer labels; the audit record must
reach Envoy's access log through filter state.

Each test uses its own consumer name (header `x-aigw-consumer`), so its series are its own.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Callable, Iterator

import anthropic
import openai
import pytest

import aigw_gateway as gateway
from conftest import start_gateway

# The template's prices, USD per million tokens: (input, output).
PRICES = {"gpt-4o-mini": (0.15, 0.6), "claude-haiku-4-5": (1.0, 5.0)}
PROMPT = "Name three colours of the rainbow please"

Labels = frozenset[tuple[str, str]]


@pytest.fixture(scope="module")
def usage_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gateway.Gateway]:
    yield from start_gateway("ai-usage-stats.yaml", tmp_path_factory)


def oai(gw: gateway.Gateway, consumer: str, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key="sk-e2e", max_retries=0,
                         timeout=20.0, default_headers={"x-aigw-consumer": consumer, **headers})


def scrape(gw: gateway.Gateway) -> dict[tuple[str, Labels], float]:
    """`aigw_gen_ai_*` samples of /stats/prometheus by (name, labels)."""
    status, text = gateway.http_get(f"{gw.admin_url}/stats/prometheus")
    assert status == 200
    out: dict[tuple[str, Labels], float] = {}
    for line in text.splitlines():
        m = re.match(r'^(aigw_gen_ai_\w+)\{([^}]*)\} (\S+)$', line)
        if m:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def series(provider: str, model: str, route: str, consumer: str, **extra: str) -> Labels:
    return frozenset({"provider": provider, "model": model, "route": route,
                      "consumer": consumer, **extra}.items())


def wait_for(gw: gateway.Gateway, done: Callable[[dict[tuple[str, Labels], float]], bool],
             timeout_s: float = 10.0) -> dict[tuple[str, Labels], float]:
    """Scrape until `done` holds (histograms appear at the next stats flush, 1 s here)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = scrape(gw)
        if done(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def micro_usd(model: str, input_tokens: int, output_tokens: int) -> int:
    price_in, price_out = PRICES[model]
    pico = round(input_tokens * price_in * 1e6) + round(output_tokens * price_out * 1e6)
    return pico // 1_000_000


def audit_records(gw: gateway.Gateway, consumer: str, access_log: bool = False) -> list[dict[str, Any]]:
    """Records of `consumer`: the plugin's own log lines (`ai-usage-stats: <json>` in Envoy's
    wasm log), or with `access_log` the access log's (`aigw-audit <json>`, from filter state)."""
    assert gw.envoy is not None
    out = []
    for line in gw.envoy.log_tail(10_000_000).splitlines():
        if access_log:
            found = line.startswith("aigw-audit {")
            text = line.removeprefix("aigw-audit ")
        else:
            at = line.find("ai-usage-stats: {")
            found, text = at >= 0, line[at + len("ai-usage-stats: "):]
        if found:
            rec = json.loads(text)
            if rec["consumer"] == consumer:
                out.append(rec)
    return out


def wait_records(gw: gateway.Gateway, consumer: str, n: int, access_log: bool = False,
                 timeout_s: float = 5.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while len(recs := audit_records(gw, consumer, access_log)) < n \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    return recs


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_the_responses_api_counts_the_tokens_the_sdk_got(
        usage_gateway: gateway.Gateway, stream: bool) -> None:
    consumer = f"team-responses-{'stream' if stream else 'json'}"
    client = oai(usage_gateway, consumer)
    if stream:
        final = None
        for event in client.responses.create(model="gpt-4o-mini", input=PROMPT, stream=True):
            if event.type == "response.completed":
                final = event.response
        assert final is not None
        usage = final.usage
    else:
        usage = client.responses.create(model="gpt-4o-mini", input=PROMPT).usage
    assert usage is not None and usage.input_tokens > 0 and usage.output_tokens > 0
    s = series("openai", "gpt-4o-mini", "chat", consumer)
    duration = ("aigw_gen_ai_server_request_duration_ms_count", s)
    got = wait_for(usage_gateway, lambda m: m.get(duration) == 1)
    assert got[("aigw_gen_ai_tokens_total", s | {("token_type", "input")})] == usage.input_tokens
    assert got[("aigw_gen_ai_tokens_total", s | {("token_type", "output")})] == usage.output_tokens
    assert ("aigw_gen_ai_usage_estimated_total", s) not in got
    [record] = wait_records(usage_gateway, consumer, 1)
    assert record["api"] == "responses"


def test_a_chat_completion_counts_the_tokens_the_sdk_got_and_their_cost(
        usage_gateway: gateway.Gateway) -> None:
    reply = oai(usage_gateway, "team-json").chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}])
    usage = reply.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    s = series("openai", "gpt-4o-mini", "chat", "team-json")
    duration = ("aigw_gen_ai_server_request_duration_ms_count", s)
    got = wait_for(usage_gateway, lambda m: m.get(duration) == 1)
    assert got[("aigw_gen_ai_requests_total", s)] == 1
    assert got[("aigw_gen_ai_tokens_total", s | {("token_type", "input")})] == usage.prompt_tokens
    assert got[("aigw_gen_ai_tokens_total", s | {("token_type", "output")})] == usage.completion_tokens
    assert got[("aigw_gen_ai_cost_micro_usd_total", s)] == micro_usd(
        "gpt-4o-mini", usage.prompt_tokens, usage.completion_tokens)
    assert got[duration] == 1
    assert got[("aigw_gen_ai_client_token_usage_sum", s | {("token_type", "input")})] \
        == pytest.approx(usage.prompt_tokens, rel=0.05)
    assert ("aigw_gen_ai_server_time_to_first_token_ms_count", s) not in got, \
        "a JSON answer has no time to first token"
    assert ("aigw_gen_ai_usage_estimated_total", s) not in got


def test_a_stream_with_include_usage_counts_its_final_usage_and_times_the_first_token(
        usage_gateway: gateway.Gateway) -> None:
    client = oai(usage_gateway, "team-stream", **{"x-sim-ttft-ms": "300"})
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}], stream=True,
        stream_options={"include_usage": True})
    text, usage = "", None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        usage = chunk.usage or usage
    assert text and usage is not None
    s = series("openai", "gpt-4o-mini", "chat", "team-stream")
    ttft = ("aigw_gen_ai_server_time_to_first_token_ms_count", s)
    got = wait_for(usage_gateway, lambda m: m.get(ttft) == 1)
    assert got[ttft] == 1
    assert got[("aigw_gen_ai_tokens_total", s | {("token_type", "input")})] == usage.prompt_tokens
    assert got[("aigw_gen_ai_tokens_total", s | {("token_type", "output")})] == usage.completion_tokens
    # llm-sim waited 300 ms before the first token: the histogram's sum says at least that.
    assert got[("aigw_gen_ai_server_time_to_first_token_ms_sum", s)] >= 300
    assert got[("aigw_gen_ai_server_time_to_first_token_ms_bucket", s | {("le", "250")})] == 0
    assert got[("aigw_gen_ai_server_time_per_output_token_us_count", s)] == 1
    assert ("aigw_gen_ai_usage_estimated_total", s) not in got
    rec = wait_records(usage_gateway, "team-stream", 1)[0]
    assert rec["usage"]["estimated"] is False
    assert rec["timings"]["ttftMs"] >= 300
    assert rec["answer"] == text


def test_a_stream_without_usage_is_estimated_and_marked(usage_gateway: gateway.Gateway) -> None:
    stream = oai(usage_gateway, "team-estimate").chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}], stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.startswith("sim:")
    s = series("openai", "gpt-4o-mini", "chat", "team-estimate")
    key = ("aigw_gen_ai_usage_estimated_total", s)
    got = wait_for(usage_gateway, lambda m: m.get(key) == 1)
    assert got[key] == 1
    assert got[("aigw_gen_ai_tokens_total", s | {("token_type", "output")})] > 0
    rec = wait_records(usage_gateway, "team-estimate", 1)[0]
    assert rec["usage"]["estimated"] is True
    assert rec["usage"]["output"] == got[("aigw_gen_ai_tokens_total", s | {("token_type", "output")})]


def test_an_anthropic_stream_is_labelled_with_its_provider_and_route(
        usage_gateway: gateway.Gateway) -> None:
    client = anthropic.Anthropic(base_url=usage_gateway.base_url, api_key="sk-e2e", max_retries=0,
                                 timeout=20.0, default_headers={"x-aigw-consumer": "team-claude"})
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=64,
                                messages=[{"role": "user", "content": PROMPT}]) as stream:
        final = stream.get_final_message()
    s = series("anthropic", "claude-haiku-4-5", "messages", "team-claude")
    ttft = ("aigw_gen_ai_server_time_to_first_token_ms_count", s)
    got = wait_for(usage_gateway, lambda m: m.get(ttft) == 1)
    assert got[("aigw_gen_ai_requests_total", s)] == 1
    assert got[("aigw_gen_ai_tokens_total", s | {("token_type", "input")})] == final.usage.input_tokens
    assert got[("aigw_gen_ai_tokens_total", s | {("token_type", "output")})] == final.usage.output_tokens
    assert got[("aigw_gen_ai_cost_micro_usd_total", s)] == micro_usd(
        "claude-haiku-4-5", final.usage.input_tokens, final.usage.output_tokens)
    rec = wait_records(usage_gateway, "team-claude", 1)[0]
    assert (rec["api"], rec["provider"], rec["cluster"], rec["route"]) \
        == ("messages", "anthropic", "llm-anthropic", "messages")
    assert rec["finishReason"] == "stop"


def test_provider_errors_are_counted_by_status(usage_gateway: gateway.Gateway) -> None:
    client = oai(usage_gateway, "team-errors", **{"x-sim-error-status": "429"})
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o-mini",
                                       messages=[{"role": "user", "content": PROMPT}])
    s = series("openai", "gpt-4o-mini", "chat", "team-errors")
    key = ("aigw_gen_ai_errors_total", s | {("error_type", "429")})
    got = wait_for(usage_gateway, lambda m: m.get(key) == 1)
    assert got[key] == 1
    assert got[("aigw_gen_ai_requests_total", s)] == 1
    assert ("aigw_gen_ai_tokens_total", s | {("token_type", "input")}) not in got
    assert wait_records(usage_gateway, "team-errors", 1)[0]["errorType"] == "429"


def test_the_audit_record_carries_the_prompt_redacted_and_reaches_the_access_log(
        usage_gateway: gateway.Gateway) -> None:
    secret = "Mail jane.doe@example.com the key sk-proj-0123456789abcdefghij"
    reply = oai(usage_gateway, "team-audit").chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": secret}])
    assert reply.usage is not None
    rec = wait_records(usage_gateway, "team-audit", 1)[0]
    assert rec["prompt"] == "Mail [EMAIL] the key [KEY]"
    assert rec["usage"]["input"] == reply.usage.prompt_tokens
    assert rec["originalModel"] == "gpt-4o-mini"
    assert rec["status"] == 200 and rec["errorType"] is None
    assert rec["timings"]["durationMs"] is not None
    assert rec["costUsd"] == pytest.approx(
        (reply.usage.prompt_tokens * 0.15 + reply.usage.completion_tokens * 0.6) / 1e6)
    # The same record, set as filter state, printed by the access log with
    # %FILTER_STATE(wasm.aigw_usage_stats:PLAIN)%; Envoy writes that file out every 10 s.
    logged = wait_records(usage_gateway, "team-audit", 1, access_log=True, timeout_s=15.0)
    assert logged == [rec]
    assert usage_gateway.envoy is not None
    log = usage_gateway.envoy.log_tail(10_000_000)
    assert "jane.doe" not in log and "sk-proj-0123" not in log


@pytest.fixture(scope="module")
def chain_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gateway.Gateway]:
    yield from start_gateway("full-chain.yaml", tmp_path_factory)


def test_in_the_full_chain_the_provider_is_the_cluster_ai_proxy_chose(
        chain_gateway: gateway.Gateway) -> None:
    client = oai(chain_gateway, "chain-team")
    # An OpenAI client calling a Claude model: ai-proxy translates it to Anthropic's API; this
    # plugin, first in the chain, sees the OpenAI request and the translated OpenAI answer.
    reply = client.chat.completions.create(
        model="claude-haiku-4-5", messages=[{"role": "user", "content": PROMPT}])
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}], stream=True,
        stream_options={"include_usage": True})
    streamed = [c.usage for c in stream if c.usage][-1]
    assert reply.usage is not None
    claude = series("anthropic", "claude-haiku-4-5", "llm", "chain-team")
    gpt = series("openai", "gpt-4o-mini", "llm", "chain-team")
    got = wait_for(chain_gateway, lambda m: ("aigw_gen_ai_requests_total", gpt) in m
                   and ("aigw_gen_ai_requests_total", claude) in m)
    assert got[("aigw_gen_ai_requests_total", claude)] == 1
    assert got[("aigw_gen_ai_tokens_total", claude | {("token_type", "input")})] \
        == reply.usage.prompt_tokens
    assert got[("aigw_gen_ai_tokens_total", claude | {("token_type", "output")})] \
        == reply.usage.completion_tokens
    assert got[("aigw_gen_ai_cost_micro_usd_total", claude)] == micro_usd(
        "claude-haiku-4-5", reply.usage.prompt_tokens, reply.usage.completion_tokens)
    assert got[("aigw_gen_ai_tokens_total", gpt | {("token_type", "output")})] \
        == streamed.completion_tokens
