"""ai-semantic-cache in real Envoy (envoy-configs/ai-semantic-cache.yaml) with its real parts: the
embedding model (scripts/embedder.py, all-MiniLM-L6-v2) and Chroma (`chroma run`), both started
here and stopped by pid; llm-sim plays the model and answers "sim: " plus the words of the last
user message, so a cached answer shows which question made it.

Driven by the unmodified OpenAI and Anthropic SDKs: ask, rephrase, get the cached answer (JSON and
streams), a miss goes to llm-sim, bypass and skip rules, the embedder going away fails open, and
the counters in /stats/prometheus. Also measures hit-path against miss-path latency (printed).
"""

from __future__ import annotations

import json
import re
import statistics
import time
from typing import Any, Iterator

import anthropic
import openai
import pytest

import aigw_gateway as gateway
import semantic_services
from conftest import Sim, _STARTED

MODEL = "sim-model"


def gateway_with_services(template: str, tmp_path_factory: pytest.TempPathFactory,
                          name: str) -> Iterator[gateway.Gateway]:
    """llm-sim and Envoy with `envoy-configs/<template>`, plus the embedder and Chroma (their
    ports fill EMBEDDER_PORT and VECTOR_STORE_PORT); all stopped by pid afterwards."""
    workdir = tmp_path_factory.mktemp(name)
    embedder, embedder_port = semantic_services.start_embedder(workdir)
    try:
        chroma, chroma_port = semantic_services.start_chroma(workdir)
    except BaseException:
        embedder.stop()
        raise
    gw = gateway.Gateway(gateway.ENVOY_CONFIGS / template, workdir,
                         values={"EMBEDDER_PORT": embedder_port, "VECTOR_STORE_PORT": chroma_port})
    gw.embedder = embedder  # type: ignore[attr-defined]
    _STARTED.append(gw)
    try:
        gw.start()
        yield gw
    finally:
        gw.stop()
        chroma.stop()
        embedder.stop()


@pytest.fixture(scope="module")
def cache_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gateway.Gateway]:
    yield from gateway_with_services("ai-semantic-cache.yaml", tmp_path_factory, "ai-semantic-cache")


@pytest.fixture(scope="module")
def csim(cache_gateway: gateway.Gateway) -> Sim:
    return Sim(cache_gateway.sim_url)


@pytest.fixture(autouse=True)
def fresh(csim: Sim) -> None:
    csim.clear()


@pytest.fixture(scope="module")
def client(cache_gateway: gateway.Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{cache_gateway.base_url}/v1", api_key="sk-e2e",
                         max_retries=0, timeout=20.0)


@pytest.fixture(scope="module")
def claude(cache_gateway: gateway.Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=cache_gateway.base_url, api_key="sk-e2e",
                               max_retries=0, timeout=20.0)


def value(text: str, pattern: str) -> float:
    """A counter's value in /stats/prometheus output."""
    m = re.search(pattern + r" (\S+)$", text, re.M)
    assert m, f"{pattern} not in /stats/prometheus"
    return float(m.group(1))


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def ask(client: openai.OpenAI, text: str, model: str = MODEL, **extra: Any) -> tuple[str, dict[str, str]]:
    raw = client.chat.completions.with_raw_response.create(model=model, messages=user(text), **extra)
    completion = raw.parse()
    return completion.choices[0].message.content or "", dict(raw.headers)


def test_a_rephrased_question_gets_the_cached_answer_without_reaching_the_model(
        client: openai.OpenAI, csim: Sim) -> None:
    first, headers = ask(client, "How do I reset my password?")
    assert headers["x-aigw-cache"] == "miss"
    assert len(csim.requests()) == 1
    csim.clear()

    again, headers = ask(client, "What are the steps to reset my password?")
    assert again == first, "the answer made for the first question"
    assert headers["x-aigw-cache"] == "hit"
    assert headers["x-aigw-cache-tier"] == "semantic"
    assert 0.88 <= float(headers["x-aigw-cache-similarity"]) < 1.0
    assert csim.requests() == [], "a hit never reaches the model"

    exact, headers = ask(client, "How do I reset my password?")
    assert (exact, headers["x-aigw-cache-tier"]) == (first, "exact")


def test_a_streamed_hit_is_a_real_stream_with_usage(client: openai.OpenAI, csim: Sim) -> None:
    first, _ = ask(client, "What is the capital city of France?")
    csim.clear()
    stream = client.chat.completions.create(
        model=MODEL, messages=user("What's the capital of France?"), stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert csim.requests() == []
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == first
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) >= 2, "the answer arrives in several chunks"
    assert chunks[0].choices[0].delta.role == "assistant"
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_a_streamed_miss_is_stored_and_then_answered_as_json(client: openai.OpenAI, csim: Sim) -> None:
    stream = client.chat.completions.create(model=MODEL, messages=user("Who wrote Pride and Prejudice?"),
                                            stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert len(csim.requests()) == 1
    csim.clear()
    answer, headers = ask(client, "Who is the author of Pride and Prejudice?")
    assert (answer, headers["x-aigw-cache"]) == (streamed, "hit")
    assert csim.requests() == []


def test_anthropic_callers_get_a_message_and_an_event_stream(
        claude: anthropic.Anthropic, csim: Sim) -> None:
    first = claude.messages.create(model=MODEL, max_tokens=64,
                                   messages=user("How long does shipping take?"))
    assert len(csim.requests()) == 1
    csim.clear()
    hit = claude.messages.create(model=MODEL, max_tokens=64,
                                 messages=user("How long will shipping take?"))
    assert hit.content[0].text == first.content[0].text
    assert hit.stop_reason == "end_turn"
    with claude.messages.stream(model=MODEL, max_tokens=64,
                                messages=user("How long will shipping take?")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == first.content[0].text
    assert final.usage.output_tokens > 0
    assert csim.requests() == []


def test_a_different_question_and_another_model_go_to_the_model(client: openai.OpenAI, csim: Sim) -> None:
    ask(client, "What is the boiling point of water?")
    csim.clear()
    _, headers = ask(client, "What is the freezing point of water?")
    assert headers["x-aigw-cache"] == "miss"
    assert float(headers["x-aigw-cache-similarity"]) < 0.88
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-other", messages=user("What is the boiling point of water?"))
    assert raw.headers["x-aigw-cache"] == "miss"
    assert len(csim.requests()) == 2


def test_bypass_and_skip_rules_send_the_request_to_the_model(client: openai.OpenAI, csim: Sim) -> None:
    ask(client, "Tell me a fact about owls.")
    csim.clear()
    _, headers = ask(client, "Tell me a fact about owls.", extra_headers={"cache-control": "no-cache"})
    assert headers["x-aigw-cache"] == "bypass"
    _, headers = ask(client, "Tell me a fact about owls.", extra_headers={"x-aigw-cache-bypass": "1"})
    assert headers["x-aigw-cache"] == "bypass"
    _, headers = ask(client, "Tell me a fact about owls.", temperature=1.5)
    assert headers["x-aigw-cache"] == "skip"
    assert len(csim.requests()) == 3


def test_counters_are_in_prometheus(cache_gateway: gateway.Gateway, client: openai.OpenAI) -> None:
    ask(client, "How many days are there in a leap year?")
    ask(client, "How many days does a leap year have?")
    status, text = gateway.http_get(f"{cache_gateway.admin_url}/stats/prometheus")
    assert status == 200
    assert value(text, r'^aigw_semantic_cache_requests\{outcome="hit_semantic"\}') >= 1
    assert value(text, r'^aigw_semantic_cache_requests\{outcome="miss"\}') >= 1
    assert value(text, r'^aigw_semantic_cache_tokens_saved\{token_type="output"\}') >= 1
    assert value(text, r"^aigw_semantic_cache_answers_stored\{\}") >= 1


def test_hit_path_is_faster_than_the_miss_path(client: openai.OpenAI) -> None:
    """Median over 15 requests each: a miss (embed, query, llm-sim, store) against a semantic hit
    (embed, query, local answer) and an exact hit (shared data only). Printed for the README."""
    misses, semantic, exact = [], [], []
    question = "Explain the latency series in one line, please."
    for i in range(15):
        model = f"latency-{i}"  # each round in its own partition
        t0 = time.perf_counter()
        _, headers = ask(client, question, model=model)
        misses.append(time.perf_counter() - t0)
        assert headers["x-aigw-cache"] == "miss"
        t0 = time.perf_counter()
        _, headers = ask(client, question, model=model)
        exact.append(time.perf_counter() - t0)
        assert headers["x-aigw-cache-tier"] == "exact"
        t0 = time.perf_counter()
        _, headers = ask(client, question.replace("please", "thanks"), model=model)
        semantic.append(time.perf_counter() - t0)
        assert headers["x-aigw-cache-tier"] == "semantic"
    ms = {name: statistics.median(v) * 1000 for name, v in
          (("miss", misses), ("semantic hit", semantic), ("exact hit", exact))}
    print("\nai-semantic-cache latency through Envoy (median of 15, ms): "
          + ", ".join(f"{k} {v:.1f}" for k, v in ms.items()))
    assert ms["exact hit"] < ms["miss"]


def test_the_embedder_going_away_fails_open(cache_gateway: gateway.Gateway, client: openai.OpenAI,
                                            csim: Sim) -> None:
    cache_gateway.embedder.stop()  # type: ignore[attr-defined]
    answer, headers = ask(client, "Is the semantic tier still there?")
    assert answer and headers["x-aigw-cache"] == "miss"
    assert len(csim.requests()) == 1
    answer2, headers = ask(client, "Is the semantic tier still there?")
    assert (answer2, headers["x-aigw-cache-tier"]) == (answer, "exact")
    status, text = gateway.http_get(f"{cache_gateway.admin_url}/stats/prometheus")
    assert value(text, r'^aigw_semantic_cache_errors\{reason="embedding"\}') >= 1


# ---------------------------------------------------------------- in the full chain (`make run`)


@pytest.fixture(scope="module")
def chain_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gateway.Gateway]:
    """envoy-configs/full-chain.yaml with the embedder and Chroma, as `make run` starts it."""
    yield from gateway_with_services("full-chain.yaml", tmp_path_factory, "full-chain-cache")


def test_in_the_full_chain_a_hit_is_accounted_by_usage_stats_and_skips_the_provider(
        chain_gateway: gateway.Gateway) -> None:
    sim = Sim(chain_gateway.sim_url)
    sim.clear()
    client = openai.OpenAI(base_url=f"{chain_gateway.base_url}/v1", api_key="sk-e2e", max_retries=0,
                           timeout=20.0, default_headers={"host": "cached.local"})
    first = client.chat.completions.create(model="claude-haiku-4-5",
                                           messages=user("How do I reset my password?"))
    assert len(sim.requests()) == 1, "the miss went through ai-proxy to the Anthropic provider"
    raw = client.chat.completions.with_raw_response.create(
        model="claude-haiku-4-5", messages=user("What are the steps to reset my password?"),
        extra_headers={"x-aigw-consumer": "team-cache"})
    assert raw.headers["x-aigw-cache"] == "hit"
    assert raw.parse().choices[0].message.content == first.choices[0].message.content
    assert len(sim.requests()) == 1, "the hit reached no provider"
    # Other hosts: the cache is off (the other plugins' examples repeat questions).
    plain = openai.OpenAI(base_url=f"{chain_gateway.base_url}/v1", api_key="sk-e2e", max_retries=0)
    raw = plain.chat.completions.with_raw_response.create(
        model="claude-haiku-4-5", messages=user("How do I reset my password?"))
    assert "x-aigw-cache" not in raw.headers
    assert len(sim.requests()) == 2
    # ai-usage-stats, outside the cache in the chain, saw the hit and wrote it in its audit record.
    assert chain_gateway.envoy is not None
    deadline = time.monotonic() + 5
    records: list[dict] = []
    while not records and time.monotonic() < deadline:
        records = [json.loads(line[line.index("{"):])
                   for line in chain_gateway.envoy.log_tail(5_000_000).splitlines()
                   if "ai-usage-stats: {" in line and '"team-cache"' in line]
        time.sleep(0.1)
    assert records, "no audit record"
    assert records[0]["cache"] == "hit", records[0]


def test_in_the_full_chain_masked_values_are_cached_as_placeholders_and_restored_per_caller(
        chain_gateway: gateway.Gateway) -> None:
    """ai-content-moderation masks e-mail addresses before the cache sees the request: the key and
    the stored answer hold `[EMAIL_1]`, and each caller gets their own address back. (llm-sim
    echoes the last user turn; for Anthropic the decorator's appended turn is merged into it.)"""
    sim = Sim(chain_gateway.sim_url)
    sim.clear()
    client = openai.OpenAI(base_url=f"{chain_gateway.base_url}/v1", api_key="sk-e2e", max_retries=0,
                           timeout=20.0, default_headers={"host": "cached.local"})
    first = client.chat.completions.create(
        model="claude-haiku-4-5", messages=user("Please repeat this address: ann.lee@corp.example"))
    assert "ann.lee@corp.example" in (first.choices[0].message.content or "")
    assert "ann.lee" not in json.dumps(sim.requests()), "the model saw the placeholder only"
    raw = client.chat.completions.with_raw_response.create(
        model="claude-haiku-4-5", messages=user("Please repeat this address: bob.ross@corp.example"))
    answer = raw.parse().choices[0].message.content or ""
    assert raw.headers["x-aigw-cache"] == "hit"
    assert "bob.ross@corp.example" in answer and "ann.lee" not in answer, answer
    assert len(sim.requests()) == 1
