"""The plugin contract's worked example (examples/model-allowlist) in real Envoy.

llm-sim is both the chat upstream and the model service: the plugin lists its models
(`GET /v1/models`) on the worker's tick and, on a cold worker, from the first request, then lets
only listed models through. Checked with the unmodified OpenAI and Anthropic SDKs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import anthropic
import openai
import pytest

import aigw_gateway as gateway

TEMPLATE = Path(__file__).resolve().parents[2] / "examples" / "model-allowlist" / "envoy.yaml"


@pytest.fixture(scope="module")
def example_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gateway.Gateway]:
    """Envoy with the example plugin in front of llm-sim."""
    gw = gateway.Gateway(TEMPLATE, tmp_path_factory.mktemp("example"))
    try:
        gw.start()
        yield gw
    finally:
        gw.stop()


def test_listed_models_pass_and_unlisted_ones_get_an_openai_404(example_gateway: gateway.Gateway) -> None:
    client = openai.OpenAI(base_url=f"{example_gateway.base_url}/v1", api_key="sk-e2e",
                           max_retries=0, timeout=10.0)
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}])
    assert reply.choices[0].message.content
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(
            model="not-listed", messages=[{"role": "user", "content": "Hello"}])
    assert "not-listed" in str(err.value)


def test_anthropic_clients_get_the_refusal_in_their_own_shape(example_gateway: gateway.Gateway) -> None:
    client = anthropic.Anthropic(base_url=example_gateway.base_url, api_key="sk-e2e",
                                 max_retries=0, timeout=10.0)
    with pytest.raises(anthropic.NotFoundError) as err:
        client.messages.create(model="claude-not-listed", max_tokens=16,
                               messages=[{"role": "user", "content": "Hello"}])
    assert err.value.body["type"] == "error"
