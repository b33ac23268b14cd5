"""The full chain (envoy-configs/full-chain.yaml, what `make run` starts) behind one door.

ai-prompt-decorator decorates every chat, then ai-proxy routes it by model to one of six
simulated providers, all served by one llm-sim that requires each provider's own credential
(`# llm-sim-args:` in the template): `gpt-4o-mini` to OpenAI, `claude-haiku-4-5` to Anthropic,
`bedrock-nova` to Bedrock Converse (SigV4), `gemini-2.0-flash` to the Gemini API, `azure-gpt-4o`
to an Azure OpenAI deployment and `vertex-flash` to Vertex AI (static token); OpenAI embeddings
for a Bedrock Titan model, a Gemini model and a Vertex AI model are translated; the Responses API
goes natively to OpenAI and to Azure's own v1 endpoint and is translated for the rest; token counts
go to Anthropic, Gemini's countTokens and Bedrock's CountTokens. Driven by the unmodified OpenAI and
Anthropic SDKs, streaming and not; each test checks what llm-sim received (path, decoration, the
provider's credential, no trace of the client's key) and what the client got.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Iterator

import anthropic
import openai
import pytest

import aigw_gateway as gateway
from conftest import Sim, start_gateway

CLIENT_KEY = "client-own-key-must-not-leak"
PROMPT = "Hello from the full chain"
PREPENDED_TEXT = "You are a concise assistant."
APPENDED_TEXT = "Answer in English."
AWS_KEY_ID = "AKIASIMULATOREXAMPLE"


class Provider:
    """One simulated provider: the model that reaches it and what llm-sim must see."""

    def __init__(self, name: str, model: str, paths: tuple[str, str], served: str = "") -> None:
        self.name = name
        self.model = model
        # The model name an answer may carry: the client's, or the mapped one the provider reports.
        self.served = {model, served or model}
        self.json_path, self.stream_path = paths

    def __repr__(self) -> str:
        return self.name

    def check_credential(self, headers: dict[str, str]) -> None:
        """The provider's credential arrived in the provider's form."""
        if self.name == "openai":
            assert headers.get("authorization") == "Bearer sk-sim-openai", headers
        elif self.name == "anthropic":
            assert headers.get("x-api-key") == "sk-sim-anthropic", headers
            assert "authorization" not in headers, headers
        elif self.name == "gemini":
            assert headers.get("x-goog-api-key") == "sim-gemini-key", headers
            assert "authorization" not in headers, headers
        elif self.name == "azure":
            assert headers.get("api-key") == "sim-azure-key", headers
            assert "authorization" not in headers, headers
        elif self.name == "vertex":
            assert headers.get("authorization") == "Bearer sim-vertex-token", headers
        else:
            auth = headers.get("authorization", "")
            assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}/"), headers
            assert "/us-east-1/bedrock/aws4_request" in auth, auth


PROVIDERS = [
    Provider("openai", "gpt-4o-mini", ("/v1/chat/completions", "/v1/chat/completions")),
    Provider("anthropic", "claude-haiku-4-5", ("/v1/messages", "/v1/messages")),
    Provider("bedrock", "bedrock-nova", ("/model/amazon.nova-micro-v1%3A0/converse",
                                         "/model/amazon.nova-micro-v1%3A0/converse-stream")),
    Provider("gemini", "gemini-2.0-flash", ("/v1beta/models/gemini-2.0-flash:generateContent",
                                            "/v1beta/models/gemini-2.0-flash:streamGenerateContent")),
    Provider("azure", "azure-gpt-4o", ("/openai/deployments/gpt4o-deploy/chat/completions",
                                       "/openai/deployments/gpt4o-deploy/chat/completions")),
    Provider("vertex", "vertex-flash", (
        "/v1/projects/sim-project/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent",
        "/v1/projects/sim-project/locations/us-central1/publishers/google/models/gemini-2.5-flash:streamGenerateContent"),
        served="gemini-2.5-flash"),
]


@pytest.fixture(scope="module")
def chain_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gateway.Gateway]:
    """llm-sim (with the template's credential flags) and Envoy with the full chain."""
    yield from start_gateway("full-chain.yaml", tmp_path_factory)


@pytest.fixture(scope="module")
def chain_sim(chain_gateway: gateway.Gateway) -> Sim:
    return Sim(chain_gateway.sim_url)


@pytest.fixture(autouse=True)
def fresh(chain_sim: Sim) -> None:
    chain_sim.clear()


@pytest.fixture()
def oai(chain_gateway: gateway.Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{chain_gateway.base_url}/v1", api_key=CLIENT_KEY,
                         max_retries=0, timeout=20.0)


@pytest.fixture()
def claude(chain_gateway: gateway.Gateway) -> anthropic.Anthropic:
    # The 2.x SDK sends the key as `Authorization: Bearer`; ai-proxy must strip that as well.
    return anthropic.Anthropic(base_url=chain_gateway.base_url, api_key=CLIENT_KEY,
                               max_retries=0, timeout=20.0)


def routed_and_decorated(sim: Sim, provider: Provider, stream: bool) -> dict[str, Any]:
    """The one request llm-sim got: the provider's path and credential, the decorator's messages
    and the user's text in the body, the client's key nowhere."""
    seen = sim.only_request()
    assert seen["path"] == (provider.stream_path if stream else provider.json_path), seen["path"]
    provider.check_credential(seen["headers"])
    assert CLIENT_KEY not in json.dumps(seen), "the client's key reached the provider"
    assert "x-aigw-upstream" not in seen["headers"] or seen["headers"]["x-aigw-upstream"] == provider.name
    body = json.dumps(seen["body"])
    for text in (PREPENDED_TEXT, APPENDED_TEXT, PROMPT):
        assert text in body, f"{text!r} missing from what {provider} got: {body}"
    return seen


def assert_sim_reply(text: str) -> None:
    """llm-sim echoes the last user text: the decorator's appended turn (merged with the user's
    own turn where the provider format merges consecutive user turns)."""
    assert text.startswith("sim: ") and text.endswith(APPENDED_TEXT), text


@pytest.mark.parametrize("provider", PROVIDERS, ids=repr)
def test_openai_sdk_chat_is_decorated_and_routed_to_each_provider(
        oai: openai.OpenAI, chain_sim: Sim, provider: Provider) -> None:
    r = oai.chat.completions.create(model=provider.model,
                                    messages=[{"role": "user", "content": PROMPT}])
    assert_sim_reply(r.choices[0].message.content or "")
    assert r.model in provider.served, r.model
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.completion_tokens > 0
    routed_and_decorated(chain_sim, provider, stream=False)


@pytest.mark.parametrize("provider", PROVIDERS, ids=repr)
def test_openai_sdk_streams_from_each_provider(
        oai: openai.OpenAI, chain_sim: Sim, provider: Provider) -> None:
    stream = oai.chat.completions.create(model=provider.model, stream=True,
                                         stream_options={"include_usage": True},
                                         messages=[{"role": "user", "content": PROMPT}])
    chunks = list(stream)
    assert len(chunks) > 3, "the answer arrives in several chunks"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert_sim_reply(text)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    routed_and_decorated(chain_sim, provider, stream=True)


@pytest.mark.parametrize("provider", PROVIDERS, ids=repr)
def test_anthropic_sdk_message_is_decorated_and_routed_to_each_provider(
        claude: anthropic.Anthropic, chain_sim: Sim, provider: Provider) -> None:
    m = claude.messages.create(model=provider.model, max_tokens=200,
                               messages=[{"role": "user", "content": PROMPT}])
    assert_sim_reply(m.content[0].text)
    assert m.stop_reason == "end_turn"
    assert m.usage.output_tokens > 0
    seen = routed_and_decorated(chain_sim, provider, stream=False)
    assert "authorization" not in seen["headers"] or CLIENT_KEY not in seen["headers"]["authorization"]


@pytest.mark.parametrize("provider", PROVIDERS, ids=repr)
def test_anthropic_sdk_streams_from_each_provider(
        claude: anthropic.Anthropic, chain_sim: Sim, provider: Provider) -> None:
    with claude.messages.stream(model=provider.model, max_tokens=200,
                                messages=[{"role": "user", "content": PROMPT}]) as s:
        pieces = list(s.text_stream)
        final = s.get_final_message()
    assert len(pieces) > 2, "text arrives in several events"
    assert_sim_reply("".join(pieces))
    assert final.stop_reason == "end_turn"
    routed_and_decorated(chain_sim, provider, stream=True)


def test_an_unreadable_200_reaches_the_sdk_as_a_502_not_a_200(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as e:
        oai.chat.completions.create(
            model="claude-haiku-4-5", messages=[{"role": "user", "content": PROMPT}],
            extra_headers={"x-sim-error-status": "200", "x-sim-error-body": "{not json"})
    assert e.value.status_code == 502
    assert "could not be translated" in str(e.value)


EMBED_CASES = [
    # (client model, width, llm-sim path, the provider whose credential llm-sim must see);
    # Titan v2 offers 256, 512 or 1024 dimensions.
    ("amazon.titan-embed-text-v2:0", 256, "/model/amazon.titan-embed-text-v2%3A0/invoke", PROVIDERS[2]),
    ("gemini-embedding-001", 8, "/v1beta/models/gemini-embedding-001:batchEmbedContents", PROVIDERS[3]),
]


@pytest.mark.parametrize("model,width,path,provider", EMBED_CASES, ids=["bedrock-titan", "gemini"])
def test_openai_sdk_embeddings_are_translated_for_bedrock_titan_and_gemini(
        oai: openai.OpenAI, chain_sim: Sim, model: str, width: int, path: str,
        provider: Provider) -> None:
    r = oai.embeddings.create(model=model, input=PROMPT, dimensions=width)
    assert r.model == model
    assert len(r.data) == 1 and r.data[0].index == 0
    vector = r.data[0].embedding
    assert len(vector) == width
    assert abs(sum(x * x for x in vector) - 1.0) < 1e-3, "llm-sim answers unit vectors"
    seen = chain_sim.only_request()
    assert seen["path"] == path, seen["path"]
    provider.check_credential(seen["headers"])
    assert CLIENT_KEY not in json.dumps(seen), "the client's key reached the provider"
    assert PROMPT in json.dumps(seen["body"])
    assert "input" not in seen["body"], "the provider got its own request shape"


def test_openai_sdk_embeddings_for_gemini_batch_several_inputs_in_order(
        oai: openai.OpenAI, chain_sim: Sim) -> None:
    r = oai.embeddings.create(model="gemini-embedding-001", input=["one", "two", "three"])
    assert [d.index for d in r.data] == [0, 1, 2]
    assert r.data[0].embedding != r.data[1].embedding
    seen = chain_sim.only_request()
    assert len(seen["body"]["requests"]) == 3


def test_a_bedrock_embeddings_refusal_reaches_the_sdk_in_the_openai_shape(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        oai.embeddings.create(model="amazon.titan-embed-text-v2:0", input=["a", "b"])
    assert "one text per request" in str(e.value)


def test_openai_sdk_embeddings_for_vertex_go_to_predict_with_the_bearer_token_in_order(
        oai: openai.OpenAI, chain_sim: Sim) -> None:
    r = oai.embeddings.create(model="vertex-embed", input=["a", "b"])
    assert r.model == "vertex-embed"
    assert [d.index for d in r.data] == [0, 1]
    assert r.data[0].embedding != r.data[1].embedding
    assert r.usage.prompt_tokens == 2, "one simulated token per input, summed"
    seen = chain_sim.only_request()
    assert seen["path"] == ("/v1/projects/sim-project/locations/us-central1/publishers/google/"
                            "models/text-embedding-005:predict"), seen["path"]
    PROVIDERS[5].check_credential(seen["headers"])
    assert CLIENT_KEY not in json.dumps(seen), "the client's key reached the provider"
    assert seen["body"]["instances"] == [{"content": "a"}, {"content": "b"}]


def test_models_are_listed_from_the_proxy_config(oai: openai.OpenAI) -> None:
    ids = [m.id for m in oai.models.list()]
    assert {"gpt-4o-mini", "claude-haiku-4-5", "bedrock-nova", "gemini-2.0-flash"} <= set(ids), ids


def test_models_are_listed_in_the_anthropic_shape_for_the_anthropic_sdk(
        claude: anthropic.Anthropic) -> None:
    ids = [m.id for m in claude.models.list()]
    assert {"gpt-4o-mini", "claude-haiku-4-5", "bedrock-nova"} <= set(ids), ids
    one = claude.models.retrieve("claude-haiku-4-5")
    assert (one.id, one.type) == ("claude-haiku-4-5", "model")
    with pytest.raises(anthropic.NotFoundError):
        claude.models.retrieve("no-such-model")


def test_the_anthropic_sdk_counts_tokens_at_the_provider_or_by_the_gateways_estimate(
        claude: anthropic.Anthropic) -> None:
    messages = [{"role": "user", "content": "The quick brown fox jumps over the lazy dog"}]
    # An Anthropic model: counted by the provider (llm-sim counts words, as its usage does).
    counted = claude.messages.with_raw_response.count_tokens(model="claude-haiku-4-5",
                                                            messages=messages)
    assert counted.parse().input_tokens == 9
    assert counted.headers.get("x-aigw-token-count") is None
    # A Gemini model: translated to Gemini's countTokens (llm-sim counts words there too).
    gemini = claude.messages.with_raw_response.count_tokens(model="gemini-2.0-flash",
                                                           messages=messages)
    assert gemini.parse().input_tokens == 9
    assert gemini.headers.get("x-aigw-token-count") is None
    # A model on a provider without a counting API: the gateway's estimate, marked as one.
    estimated = claude.messages.with_raw_response.count_tokens(model="gpt-4o-mini",
                                                              messages=messages)
    assert estimated.parse().input_tokens > 0
    assert estimated.headers.get("x-aigw-token-count") == "estimated"


def test_a_mapped_model_is_named_in_a_response_header_and_the_audit_record(
        oai: openai.OpenAI, chain_gateway: gateway.Gateway) -> None:
    raw = oai.chat.completions.with_raw_response.create(
        model="bedrock-nova", messages=[{"role": "user", "content": PROMPT}],
        extra_headers={"x-aigw-consumer": "team-mapped"})
    assert raw.headers.get("x-aigw-upstream-model") == "amazon.nova-micro-v1:0"
    assert chain_gateway.envoy is not None
    deadline = time.monotonic() + 5
    records: list[dict] = []
    while not records and time.monotonic() < deadline:
        records = [json.loads(line[line.index("{"):])
                   for line in chain_gateway.envoy.log_tail(5_000_000).splitlines()
                   if "ai-usage-stats: {" in line and '"team-mapped"' in line]
        time.sleep(0.1)
    assert records, "no audit record"
    assert (records[0]["originalModel"], records[0]["requestModel"]) == \
        ("bedrock-nova", "amazon.nova-micro-v1:0")


def test_azure_gets_the_responses_api_on_its_v1_endpoint_with_the_deployment_as_the_model(
        oai: openai.OpenAI, chain_sim: Sim) -> None:
    raw = oai.responses.with_raw_response.create(model="azure-gpt-4o", input=PROMPT)
    resp = raw.parse()
    assert resp.status == "completed" and resp.output_text.startswith("sim:"), resp
    seen = chain_sim.only_request()
    assert seen["path"] == "/openai/v1/responses", seen["path"]
    PROVIDERS[4].check_credential(seen["headers"])
    assert CLIENT_KEY not in json.dumps(seen)
    assert seen["body"]["model"] == "gpt4o-deploy", seen["body"]
    # The decorator's turns around the user's, as for every backend.
    assert PROMPT in json.dumps(seen["body"]["input"]), seen["body"]
    # Azure's own answer, untouched: its headers reach the client.
    assert raw.headers.get("x-ms-deployment-name") == "gpt4o-deploy"


def test_bedrock_counts_tokens_with_count_tokens_for_both_sdks_and_the_estimate_covers_a_refusal(
        claude: anthropic.Anthropic, oai: openai.OpenAI, chain_sim: Sim) -> None:
    messages = [{"role": "user", "content": "The quick brown fox jumps over the lazy dog"}]
    counted = claude.messages.with_raw_response.count_tokens(model="bedrock-nova",
                                                            messages=messages)
    # llm-sim's CountTokens counts words, as its Converse usage does.
    assert counted.parse().input_tokens == 9
    assert counted.headers.get("x-aigw-token-count") is None
    seen = chain_sim.only_request()
    assert seen["path"] == "/model/amazon.nova-micro-v1%3A0/count-tokens", seen["path"]
    PROVIDERS[2].check_credential(seen["headers"])
    assert seen["body"] == {"input": {"converse": {"messages": [
        {"role": "user", "content": [{"text": "The quick brown fox jumps over the lazy dog"}]}]}}}

    chain_sim.clear()
    raw = oai.responses.input_tokens.with_raw_response.count(
        model="bedrock-nova", instructions="Be brief.",
        input=[{"role": "user", "content": "What is the weather in Paris?"}])
    assert raw.parse().input_tokens == 8  # "Be brief." and the question: 2 + 6 words
    assert raw.headers.get("x-aigw-token-count") is None
    assert chain_sim.only_request()["body"]["input"]["converse"]["system"] == [{"text": "Be brief."}]

    # Bedrock refuses (llm-sim fails the call on demand): the gateway's estimate, marked.
    chain_sim.clear()
    refused = claude.messages.with_raw_response.count_tokens(
        model="bedrock-nova", messages=messages, extra_headers={"x-sim-error-status": "400"})
    assert refused.http_response.status_code == 200
    assert refused.parse().input_tokens > 0
    assert refused.headers.get("x-aigw-token-count") == "estimated"
    assert chain_sim.only_request()["path"].endswith("/count-tokens")


def test_the_openai_sdk_counts_responses_input_tokens_estimated_for_a_non_openai_model(
        oai: openai.OpenAI) -> None:
    raw = oai.responses.input_tokens.with_raw_response.count(
        model="claude-haiku-4-5", instructions="Be brief.",
        input=[{"role": "user", "content": "What is the weather in Paris?"}])
    counted = raw.parse()
    assert counted.object == "response.input_tokens"
    assert counted.input_tokens > 5
    assert raw.headers.get("x-aigw-token-count") == "estimated"


# gpt-4o-mini: OpenAI itself, azure-gpt-4o: Azure OpenAI's own Responses API (v1), the request
# and the answer passed through natively.
@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku-4-5", "gemini-2.0-flash",
                                   "bedrock-nova", "azure-gpt-4o"])
def test_the_openai_sdk_speaks_the_responses_api_to_every_backend(
        oai: openai.OpenAI, model: str) -> None:
    resp = oai.responses.create(model=model, instructions="Be brief.",
                                input="Name three colours of the rainbow please")
    assert resp.object == "response" and resp.status == "completed"
    assert resp.output_text.startswith("sim:"), resp.output_text
    assert resp.usage is not None and resp.usage.input_tokens > 0


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku-4-5", "gemini-2.0-flash",
                                   "bedrock-nova", "azure-gpt-4o"])
def test_a_responses_api_function_call_round_trip(oai: openai.OpenAI, model: str) -> None:
    tools = [{"type": "function", "name": "get_weather", "description": "Weather by city",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                             "required": ["city"]}}]
    first = oai.responses.create(model=model, tools=tools, tool_choice="required",
                                 input="What is the weather in Paris?")
    calls = [o for o in first.output if o.type == "function_call"]
    assert calls and calls[0].name == "get_weather", first.output
    assert json.loads(calls[0].arguments), calls[0].arguments
    second = oai.responses.create(
        model=model, tools=tools,
        input=[{"role": "user", "content": "What is the weather in Paris?"},
               {"type": "function_call", "call_id": calls[0].call_id, "name": calls[0].name,
                "arguments": calls[0].arguments},
               {"type": "function_call_output", "call_id": calls[0].call_id,
                "output": "Sunny, 21 degrees"}])
    assert second.output_text, second.output


COLOURS_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["colours"],
                  "properties": {"colours": {"type": "array", "items": {"type": "string"}}}}


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku-4-5", "gemini-2.0-flash",
                                   "bedrock-nova", "azure-gpt-4o"])
def test_a_responses_api_json_schema_reaches_every_backend_in_its_own_form(
        oai: openai.OpenAI, chain_sim: Sim, model: str) -> None:
    chain_sim.clear()
    fmt = {"type": "json_schema", "name": "colours", "strict": True, "schema": COLOURS_SCHEMA}
    resp = oai.responses.create(model=model, input="Name three colours", text={"format": fmt})
    assert resp.status == "completed"
    [sent] = [r["body"] for r in chain_sim.requests()]
    if model.startswith(("gpt", "azure")):
        # Native (OpenAI, Azure): the format as the client wrote it.
        assert sent["text"]["format"]["schema"] == COLOURS_SCHEMA
    elif model.startswith("gemini"):
        # Gemini's structured output: the schema in its OpenAPI subset, JSON mime type.
        assert sent["generationConfig"]["responseMimeType"] == "application/json"
        assert sent["generationConfig"]["responseSchema"]["required"] == ["colours"]
    else:
        # Anthropic and Bedrock Converse have no schema field: an instruction carrying it.
        system = json.dumps(sent["system"])
        assert "JSON schema" in system and "colours" in system, system


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku-4-5", "gemini-2.0-flash",
                                   "azure-gpt-4o"])
def test_the_openai_sdk_streams_the_responses_api_from_every_backend(
        oai: openai.OpenAI, model: str) -> None:
    kinds, deltas, final = [], [], None
    for event in oai.responses.create(model=model, input="Name three colours please",
                                      stream=True):
        kinds.append(event.type)
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        if event.type == "response.completed":
            final = event.response
    assert kinds[:2] == ["response.created", "response.in_progress"], kinds
    assert kinds[-1] == "response.completed", kinds
    assert final is not None and final.output_text == "".join(deltas)
    assert final.output_text.startswith("sim:"), final.output_text
    assert final.usage is not None and final.usage.output_tokens > 0


def prometheus(gw: gateway.Gateway) -> str:
    status, text = gateway.http_get(f"{gw.admin_url}/stats/prometheus")
    assert status == 200
    return text


def test_per_provider_metrics_reach_prometheus_with_labels_and_no_keys(
        oai: openai.OpenAI, chain_gateway: gateway.Gateway) -> None:
    for provider in PROVIDERS:
        oai.chat.completions.create(model=provider.model,
                                    messages=[{"role": "user", "content": PROMPT}])
    # ai-proxy's view of each provider call, in the suite's GenAI scheme (model: the model sent).
    want = [
        ("aigw_gen_ai_upstream_requests_total", {"provider": "openai", "model": "gpt-4o-mini"}),
        ("aigw_gen_ai_upstream_requests_total",
         {"provider": "anthropic", "model": "claude-haiku-4-5"}),
        ("aigw_gen_ai_upstream_requests_total",
         {"provider": "bedrock", "model": "amazon_nova-micro-v1_0"}),
        ("aigw_gen_ai_upstream_tokens_total",
         {"provider": "openai", "model": "gpt-4o-mini", "token_type": "output"}),
        ("aigw_gen_ai_upstream_tokens_total",
         {"provider": "bedrock", "model": "amazon_nova-micro-v1_0", "token_type": "input"}),
        ("aigw_gen_ai_upstream_requests_total", {"provider": "gemini", "model": "gemini-2_0-flash"}),
    ]

    def found(text: str) -> list[tuple[str, dict[str, str]]]:
        samples = []
        for line in text.splitlines():
            m = re.match(r"^(aigw_gen_ai_upstream_\w+)\{([^}]*)\} (\S+)$", line)
            if m and float(m.group(3)) > 0:
                samples.append((m.group(1), dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))))
        return samples

    def missing_in(text: str) -> list[tuple[str, dict[str, str]]]:
        got = found(text)
        # Every series carries the route (Envoy's route name) and consumer `unknown`.
        return [(name, labels) for name, labels in want
                if not any(n == name and (labels | {"route": "llm", "consumer": "unknown"}).items()
                           <= got_labels.items() for n, got_labels in got)]

    deadline = time.monotonic() + 10
    text = prometheus(chain_gateway)
    while missing_in(text) and time.monotonic() < deadline:
        time.sleep(0.2)
        text = prometheus(chain_gateway)
    missing = missing_in(text)
    assert not missing, f"missing {missing} in:\n" + "\n".join(
        line for line in text.splitlines() if "aigw" in line)
    for secret in ("sk-sim-openai", "sk-sim-anthropic", "sim/secret/key", "sim-gemini-key", CLIENT_KEY):
        assert secret not in text


def test_no_configured_key_appears_in_envoy_logs(chain_gateway: gateway.Gateway,
                                                 oai: openai.OpenAI) -> None:
    oai.chat.completions.create(model="claude-haiku-4-5",
                                messages=[{"role": "user", "content": PROMPT}])
    assert chain_gateway.envoy is not None
    log = chain_gateway.envoy.log_tail(10_000_000)
    for secret in ("sk-sim-openai", "sk-sim-anthropic", "sim/secret/key/for/local/tests/only",
                   "sim-gemini-key"):
        assert secret not in log
