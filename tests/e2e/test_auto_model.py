"""ai-proxy's `auto` model in real Envoy with the unmodified OpenAI and Anthropic SDKs.

envoy-configs/ai-proxy.yaml defines the alias `auto`: a prompt with code, or of 400 estimated
tokens or more, goes to `claude-haiku-4-5` (the Anthropic provider, translated); anything else to
`gpt-4o-mini`. What llm-sim received and `x-aigw-upstream-model` show the choice.
"""

from __future__ import annotations

from typing import Iterator

import anthropic
import openai
import pytest

import aigw_gateway as gateway
from conftest import Sim, start_gateway


@pytest.fixture(scope="module")
def auto_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gateway.Gateway]:
    """Envoy with ai-proxy alone (envoy-configs/ai-proxy.yaml)."""
    yield from start_gateway("ai-proxy.yaml", tmp_path_factory)


@pytest.fixture(scope="module")
def sim(auto_gateway: gateway.Gateway) -> Sim:
    return Sim(auto_gateway.sim_url)


@pytest.fixture(autouse=True)
def fresh(sim: Sim) -> None:
    sim.clear()


@pytest.fixture()
def oai(auto_gateway: gateway.Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{auto_gateway.base_url}/v1", api_key="client-own-key", max_retries=0)


def ask(oai: openai.OpenAI, text: str):  # type: ignore[no-untyped-def]
    return oai.chat.completions.with_raw_response.create(
        model="auto", max_tokens=50, messages=[{"role": "user", "content": text}])


def test_a_simple_prompt_goes_to_the_small_model(oai: openai.OpenAI, sim: Sim) -> None:
    raw = ask(oai, "What is the capital of France?")
    assert raw.parse().choices[0].message.content == "sim: What is the capital of France?"
    assert raw.headers.get("x-aigw-upstream-model") == "gpt-4o-mini"
    seen = sim.only_request()
    assert seen["path"] == "/v1/chat/completions"
    assert seen["body"]["model"] == "gpt-4o-mini"


def test_a_prompt_with_code_goes_to_the_large_model_on_its_provider(oai: openai.OpenAI, sim: Sim) -> None:
    raw = ask(oai, "Why does this fail?\n```python\nprint(1/0)\n```")
    assert raw.parse().choices[0].message.content
    assert raw.headers.get("x-aigw-upstream-model") == "claude-haiku-4-5"
    seen = sim.only_request()
    assert seen["path"] == "/v1/messages"
    assert seen["body"]["model"] == "claude-haiku-4-5"


def test_a_long_prompt_goes_to_the_large_model(oai: openai.OpenAI, sim: Sim) -> None:
    raw = ask(oai, "tell me more about the history of it " * 80)
    assert raw.headers.get("x-aigw-upstream-model") == "claude-haiku-4-5"
    assert sim.only_request()["body"]["model"] == "claude-haiku-4-5"


def test_the_anthropic_sdk_can_ask_for_auto_too(auto_gateway: gateway.Gateway, sim: Sim) -> None:
    claude = anthropic.Anthropic(base_url=auto_gateway.base_url, api_key="client-own-key", max_retries=0)
    raw = claude.messages.with_raw_response.create(model="auto", max_tokens=50,
                                                   messages=[{"role": "user", "content": "Say hi"}])
    assert raw.parse().content[0].text == "sim: Say hi"  # type: ignore[union-attr]
    assert raw.headers.get("x-aigw-upstream-model") == "gpt-4o-mini"
    assert sim.only_request()["path"] == "/v1/chat/completions"


def test_auto_is_listed_with_the_models(oai: openai.OpenAI) -> None:
    assert "auto" in [m.id for m in oai.models.list()]
