"""ai-proxy in real Envoy, driven by the unmodified OpenAI and Anthropic Python SDKs and curl.

envoy-configs/ai-proxy.yaml has two providers, `openai` and `anthropic`, both served by llm-sim
(one Envoy cluster each, chosen by the plugin through the `x-aigw-upstream` header). So every pair
is exercised: OpenAI -> OpenAI and Anthropic -> Anthropic pass through, OpenAI -> Anthropic and
Anthropic -> OpenAI are translated, streaming and not. What llm-sim received is checked too.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any, Iterator

import anthropic
import openai
import pytest

import aigw_gateway as gateway
from conftest import Sim, start_gateway

PROMPT = "Hello from the gateway tests"
REPLY = "sim: Hello from the gateway tests"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
    },
}


@pytest.fixture(scope="module")
def proxy_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gateway.Gateway]:
    """Envoy with ai-proxy alone (envoy-configs/ai-proxy.yaml)."""
    yield from start_gateway("ai-proxy.yaml", tmp_path_factory)


@pytest.fixture(scope="module")
def proxy_sim(proxy_gateway: gateway.Gateway) -> Sim:
    return Sim(proxy_gateway.sim_url)


@pytest.fixture(autouse=True)
def fresh(proxy_sim: Sim) -> None:
    proxy_sim.clear()


@pytest.fixture()
def oai(proxy_gateway: gateway.Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy_gateway.base_url}/v1", api_key="client-own-key", max_retries=0)


@pytest.fixture()
def claude(proxy_gateway: gateway.Gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy_gateway.base_url, api_key="client-own-key", max_retries=0)


def upstream(sim: Sim) -> dict[str, Any]:
    return sim.only_request()


def test_openai_sdk_to_openai_provider_passes_through_with_the_provider_key(oai: openai.OpenAI, proxy_sim: Sim) -> None:
    r = oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}])
    assert r.choices[0].message.content == REPLY
    seen = upstream(proxy_sim)
    assert seen["path"] == "/v1/chat/completions"
    assert seen["headers"]["authorization"] == "Bearer sk-sim-openai"
    assert "client-own-key" not in json.dumps(seen["headers"])


def test_openai_sdk_to_anthropic_provider_is_translated(oai: openai.OpenAI, proxy_sim: Sim) -> None:
    r = oai.chat.completions.create(model="claude-haiku-4-5", max_tokens=50,
                                    messages=[{"role": "system", "content": "Be brief."},
                                              {"role": "user", "content": PROMPT}])
    assert r.choices[0].message.content == REPLY
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.completion_tokens == len(REPLY.split())
    seen = upstream(proxy_sim)
    assert seen["path"] == "/v1/messages"
    assert seen["headers"]["x-api-key"] == "sk-sim-anthropic"
    assert seen["headers"]["anthropic-version"] == "2023-06-01"
    assert seen["body"]["system"] == [{"type": "text", "text": "Be brief."}]


def test_openai_sdk_streams_from_anthropic_provider_with_usage(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(model="gpt-4o-as-claude", stream=True,
                                         stream_options={"include_usage": True},
                                         messages=[{"role": "user", "content": PROMPT}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


def test_openai_sdk_streams_anthropic_tool_calls(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(model="claude-haiku-4-5", stream=True, tools=[WEATHER_TOOL],
                                         messages=[{"role": "user", "content": "What is the weather in Paris?"}])
    args, names, finish = "", [], None
    for c in stream:
        for tc in c.choices[0].delta.tool_calls or [] if c.choices else []:
            if tc.function and tc.function.name:
                names.append(tc.function.name)
            args += (tc.function.arguments or "") if tc.function else ""
        if c.choices and c.choices[0].finish_reason:
            finish = c.choices[0].finish_reason
    assert names == ["get_weather"]
    assert json.loads(args) == {"location": "Paris"}
    assert finish == "tool_calls"


def test_anthropic_sdk_to_anthropic_provider_passes_through(claude: anthropic.Anthropic, proxy_sim: Sim) -> None:
    with claude.messages.stream(model="claude-haiku-4-5", max_tokens=100,
                                messages=[{"role": "user", "content": PROMPT}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == REPLY
    assert final.stop_reason == "end_turn"
    seen = upstream(proxy_sim)
    assert seen["headers"]["x-api-key"] == "sk-sim-anthropic"


def test_anthropic_sdk_to_openai_provider_is_translated(claude: anthropic.Anthropic, proxy_sim: Sim) -> None:
    m = claude.messages.create(model="gpt-4o-mini", max_tokens=100, system="Be brief.",
                               messages=[{"role": "user", "content": PROMPT}])
    assert m.content[0].text == REPLY
    assert m.stop_reason == "end_turn"
    assert m.usage.output_tokens == len(REPLY.split())
    seen = upstream(proxy_sim)
    assert seen["path"] == "/v1/chat/completions"
    assert seen["headers"]["authorization"] == "Bearer sk-sim-openai"
    assert seen["body"]["messages"][0] == {"role": "system", "content": "Be brief."}


def test_anthropic_sdk_streams_openai_tool_calls(claude: anthropic.Anthropic) -> None:
    tool = {"name": "get_weather", "description": "Weather for a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"]}
    with claude.messages.stream(model="gpt-4o-mini", max_tokens=100, tools=[tool],
                                messages=[{"role": "user", "content": "What is the weather in Paris?"}]) as s:
        final = s.get_final_message()
    assert final.stop_reason == "tool_use"
    use = [b for b in final.content if b.type == "tool_use"]
    assert use and use[0].name == "get_weather" and use[0].input == {"location": "Paris"}
    assert final.usage.output_tokens > 0


def test_models_come_from_the_config(oai: openai.OpenAI) -> None:
    ids = [m.id for m in oai.models.list()]
    assert ids == ["gpt-4o-as-claude", "gpt-4o-mini", "sim-model", "gpt-4o-fallback", "gpt-4o-retry", "gpt-4o-reset", "auto"]


def test_errors_reach_each_sdk_in_its_own_shape(oai: openai.OpenAI, claude: anthropic.Anthropic,
                                                proxy_gateway: gateway.Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        oai.chat.completions.create(model="claude-haiku-4-5", messages=[{"role": "user", "content": "x"}],
                                    presence_penalty=0.5)
    assert "presence_penalty" in str(e.value)
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.create(model="gpt-4o-mini", max_tokens=-1, messages=[{"role": "user", "content": "x"}])
    out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "-X", "POST", "-H", "content-type: application/json",
                          "--data", "{not json", f"{proxy_gateway.base_url}/v1/messages"],
                         capture_output=True, text=True, timeout=30, check=True)
    body, status = out.stdout.rsplit("\n", 1)
    assert status == "400"
    assert json.loads(body)["type"] == "error"


def test_without_allow_on_headers_stop_iteration_a_request_gets_a_500_naming_the_option(
        tmp_path: Any) -> None:
    # The shipped config with the option turned off: Envoy never hands the body to a plugin that
    # held the headers. The plugin's watchdog answers the stuck request (in the caller's shape)
    # and logs why, instead of letting it hang until the client gives up.
    original = gateway.ENVOY_CONFIGS / "ai-proxy.yaml"
    text = original.read_text(encoding="utf-8")
    assert "allow_on_headers_stop_iteration: true" in text
    template = tmp_path / "ai-proxy-without-stop-iteration.yaml"
    template.write_text(text.replace("allow_on_headers_stop_iteration: true",
                                     "allow_on_headers_stop_iteration: false"), encoding="utf-8")
    with gateway.Gateway(template, tmp_path / "run", sim_args=gateway.template_sim_args(original)) as gw:
        client = anthropic.Anthropic(base_url=gw.base_url, api_key="k", max_retries=0, timeout=30)
        with pytest.raises(anthropic.InternalServerError) as raised:
            client.messages.create(model="claude-haiku-4-5", max_tokens=10,
                                   messages=[{"role": "user", "content": PROMPT}])
        assert "allow_on_headers_stop_iteration: true" in str(raised.value), raised.value
        assert Sim(gw.sim_url).requests() == [], "nothing reached the provider"


def test_a_revoked_pool_key_sits_out_on_every_worker_after_one_401(tmp_path: Any) -> None:
    # The OpenAI pool holds a key llm-sim refuses (401) before the good one: the first request
    # sent with it fails, the key is taken out in shared data, and no later request on either
    # Envoy worker uses it (round robin would otherwise send every second request with it).
    original = gateway.ENVOY_CONFIGS / "ai-proxy.yaml"
    text = original.read_text(encoding="utf-8")
    pool = '"apiKeys": ["sk-sim-openai"]'
    assert text.count(pool) == 1
    template = tmp_path / "ai-proxy-key-pool.yaml"
    template.write_text(text.replace(pool, '"apiKeys": ["sk-revoked", "sk-sim-openai"]'), encoding="utf-8")
    with gateway.Gateway(template, tmp_path / "run", sim_args=gateway.template_sim_args(original)) as gw:
        client = openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key="k", max_retries=0)
        failures = 0
        for _ in range(12):
            try:
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}])
            except openai.AuthenticationError:
                failures += 1
        assert failures == 1, failures
        seen = Sim(gw.sim_url).requests()
        used = [r["headers"].get("authorization") for r in seen]
        assert used.count("Bearer sk-revoked") == 1, used
        _, stats = gateway.http_get(f"{gw.admin_url}/stats?filter=key_ejections")
        assert "key_ejections: 1" in stats, stats
        log = gw.envoy.log.read_text(encoding="utf-8", errors="replace")
        assert "sits out for 60 s after a 401" in log
        assert "sk-revoked" not in log
