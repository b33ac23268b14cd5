"""Tool calls through the full chain to every simulated provider, with both unmodified SDKs.

The client forces the tool (`tool_choice`), which makes llm-sim answer with a call to it in the
provider's own format (OpenAI tool_calls, Anthropic tool_use, Bedrock toolUse, Gemini
functionCall); ai-proxy must hand it back in the client's format, streamed or not, and must have
sent the tool declaration in the provider's format.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest

from conftest import Sim
from test_full_chain import CLIENT_KEY, PROVIDERS, Provider, chain_gateway, chain_sim  # noqa: F401

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                   "required": ["location"]},
}
QUESTION = "What is the weather in Paris?"


@pytest.fixture(autouse=True)
def fresh(chain_sim: Sim) -> None:  # noqa: F811
    chain_sim.clear()


def declared_tool(provider: Provider, body: dict[str, Any]) -> str:
    """The tool name as the provider's request format declares it."""
    if provider.name in ("openai", "azure"):
        return body["tools"][0]["function"]["name"]
    if provider.name == "anthropic":
        return body["tools"][0]["name"]
    if provider.name == "bedrock":
        return body["toolConfig"]["tools"][0]["toolSpec"]["name"]
    return body["tools"][0]["functionDeclarations"][0]["name"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("provider", PROVIDERS, ids=repr)
def test_openai_sdk_gets_a_tool_call_from_each_provider(
        chain_gateway: Any, chain_sim: Sim, provider: Provider, stream: bool) -> None:  # noqa: F811
    client = openai.OpenAI(base_url=f"{chain_gateway.base_url}/v1", api_key=CLIENT_KEY,
                           max_retries=0, timeout=20.0)
    args = dict(model=provider.model, messages=[{"role": "user", "content": QUESTION}],
                tools=[{"type": "function", "function": WEATHER}],
                tool_choice={"type": "function", "function": {"name": "get_weather"}})
    if stream:
        name, arguments, finish = "", "", None
        for chunk in client.chat.completions.create(stream=True, **args):
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or []:
                    name += call.function.name or "" if call.function else ""
                    arguments += call.function.arguments or "" if call.function else ""
                finish = choice.finish_reason or finish
    else:
        reply = client.chat.completions.create(**args)
        call = reply.choices[0].message.tool_calls[0]
        name, arguments, finish = call.function.name, call.function.arguments, reply.choices[0].finish_reason
    assert name == "get_weather"
    assert "location" in json.loads(arguments), arguments
    assert finish == "tool_calls"
    assert declared_tool(provider, chain_sim.only_request()["body"]) == "get_weather"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("provider", PROVIDERS, ids=repr)
def test_anthropic_sdk_gets_a_tool_use_from_each_provider(
        chain_gateway: Any, chain_sim: Sim, provider: Provider, stream: bool) -> None:  # noqa: F811
    client = anthropic.Anthropic(base_url=chain_gateway.base_url, api_key=CLIENT_KEY,
                                 max_retries=0, timeout=20.0)
    args = dict(model=provider.model, max_tokens=200,
                messages=[{"role": "user", "content": QUESTION}],
                tools=[{"name": WEATHER["name"], "description": WEATHER["description"],
                        "input_schema": WEATHER["parameters"]}],
                tool_choice={"type": "tool", "name": "get_weather"})
    if stream:
        with client.messages.stream(**args) as s:
            message = s.get_final_message()
    else:
        message = client.messages.create(**args)
    uses = [b for b in message.content if b.type == "tool_use"]
    assert len(uses) == 1, message.content
    assert uses[0].name == "get_weather" and "location" in uses[0].input, uses[0]
    assert message.stop_reason == "tool_use"
    assert declared_tool(provider, chain_sim.only_request()["body"]) == "get_weather"
