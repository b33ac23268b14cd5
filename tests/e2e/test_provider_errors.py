"""Provider failures through the full chain reach each unmodified SDK as a clear error in its own
protocol, never as a success and never as a hung stream: Azure's content-filter refusal, an
upstream 5xx, a stream the provider cuts short, a bad request the gateway answers itself, a provider
`cluster` Envoy does not have (named in the error), and a held answer the provider breaks off
mid-body (a 502; in the SDK's shape with the connection manager's local reply mapper).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import time
import urllib.error
import urllib.request

import anthropic
import openai
import pytest

import aigw_gateway as gateway
from conftest import Sim, start_gateway
from test_full_chain import CLIENT_KEY, PROVIDERS, Provider, chain_gateway, chain_sim  # noqa: F401

TIMEOUT = 20.0


@pytest.fixture(autouse=True)
def fresh(chain_sim: Sim) -> None:  # noqa: F811
    chain_sim.clear()


def oai(gw: Any, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=CLIENT_KEY, max_retries=0,
                         timeout=TIMEOUT, default_headers=headers)


def claude(gw: Any, **headers: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0,
                               timeout=TIMEOUT, default_headers=headers)


def test_azure_content_filter_refusal_reaches_the_openai_sdk_as_a_400_content_filter(
        chain_gateway: Any) -> None:  # noqa: F811
    with pytest.raises(openai.BadRequestError) as raised:
        oai(chain_gateway).chat.completions.create(
            model="azure-gpt-4o", messages=[{"role": "user", "content": "sim-content-filter please"}])
    assert raised.value.code == "content_filter", raised.value.body


def test_azure_content_filter_refusal_reaches_the_anthropic_sdk_in_anthropic_shape(
        chain_gateway: Any) -> None:  # noqa: F811
    with pytest.raises(anthropic.BadRequestError) as raised:
        claude(chain_gateway).messages.create(
            model="azure-gpt-4o", max_tokens=20,
            messages=[{"role": "user", "content": "sim-content-filter please"}])
    body = raised.value.body
    assert isinstance(body, dict) and body["type"] == "error", body
    assert body["error"]["type"] == "invalid_request_error", body


@pytest.mark.parametrize("provider", PROVIDERS, ids=repr)
def test_an_upstream_503_is_a_5xx_error_for_both_sdks(chain_gateway: Any, provider: Provider) -> None:  # noqa: F811
    with pytest.raises(openai.InternalServerError):
        oai(chain_gateway, **{"x-sim-error-status": "503"}).chat.completions.create(
            model=provider.model, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.InternalServerError):
        claude(chain_gateway, **{"x-sim-error-status": "503"}).messages.create(
            model=provider.model, max_tokens=20, messages=[{"role": "user", "content": "hi"}])


@pytest.mark.parametrize("provider", PROVIDERS, ids=repr)
def test_a_stream_cut_short_by_the_provider_ends_in_an_error_not_a_hang(
        chain_gateway: Any, provider: Provider) -> None:  # noqa: F811
    client = oai(chain_gateway, **{"x-sim-truncate-after": "2"})
    started = time.monotonic()
    with pytest.raises(Exception) as raised:
        chunks = list(client.chat.completions.create(
            model=provider.model, stream=True,
            messages=[{"role": "user", "content": "one two three four five six seven"}]))
        # A stream that ends cleanly without its finish would be a silent truncation.
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finishes, "the stream ended without a finish reason and without an error"
    assert not isinstance(raised.value, (AssertionError, openai.APITimeoutError)), raised.value
    assert time.monotonic() - started < TIMEOUT / 2, "the error came only after a long wait"


@pytest.mark.parametrize("provider", PROVIDERS, ids=repr)
def test_a_stream_that_ends_early_reaches_the_openai_sdk_as_an_error_event(
        chain_gateway: Any, provider: Provider) -> None:  # noqa: F811
    # The provider ends its HTTP body cleanly, but before the stream's own ending: same-protocol
    # (OpenAI, Azure) and translated routes alike close with an in-band error event, so the SDK
    # raises its plain APIError, not a decoding error or a silent success.
    client = oai(chain_gateway, **{"x-sim-end-after": "2"})
    with pytest.raises(openai.APIError) as raised:
        for _ in client.chat.completions.create(
                model=provider.model, stream=True,
                messages=[{"role": "user", "content": "one two three four five six seven"}]):
            pass
    assert type(raised.value) is openai.APIError, repr(raised.value)
    assert "stream ended before" in str(raised.value), raised.value


@pytest.mark.parametrize("provider", PROVIDERS, ids=repr)
def test_a_stream_that_ends_early_reaches_the_anthropic_sdk_as_an_error_event(
        chain_gateway: Any, provider: Provider) -> None:  # noqa: F811
    client = claude(chain_gateway, **{"x-sim-end-after": "2"})
    with pytest.raises(Exception) as raised:
        with client.messages.stream(
                model=provider.model, max_tokens=50,
                messages=[{"role": "user", "content": "one two three four five six seven"}]) as stream:
            for _ in stream:
                pass
            stream.get_final_message()
    assert isinstance(raised.value, anthropic.APIStatusError), repr(raised.value)
    assert "stream ended before" in str(raised.value), raised.value


def test_malformed_json_is_a_400_from_the_gateway_in_each_protocol(chain_gateway: Any) -> None:  # noqa: F811
    status, body = post(chain_gateway, "/v1/chat/completions", b'{"model": "gpt-4o-mini", "messages": [')
    assert status == 400 and b'"invalid_request_error"' in body, body
    status, body = post(chain_gateway, "/v1/messages", b'{"model": "claude-haiku-4-5", "max_tokens": ')
    assert status == 400 and b'"type":"error"' in body, body


def post(gw: Any, path: str, body: bytes) -> tuple[int, bytes]:
    req = urllib.request.Request(f"{gw.base_url}{path}", data=body, method="POST",
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# ---- a provider `cluster` Envoy does not have; a held answer the provider breaks mid-body ----

# Envoy's router answers an upstream reset that comes after the response headers with a local
# reply. When ai-proxy holds those headers (a translated JSON answer, an error body), that reply
# bypasses every filter and goes straight to the client as text/plain: no plugin can shape it.
# The connection manager's local reply mapper is the one place that can (ai-proxy README, "Envoy");
# the shipped configs carry this one.
RESET_REPLY_MAPPER = """\
local_reply_config:
  mappers:
  - filter:
      extension_filter:
        name: envoy.access_loggers.extension_filters.cel
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter
          expression: "response.code_details.startsWith('upstream_reset_after_response_started')"
    status_code: 502
    body_format_override:
      json_format:
        type: error
        error:
          type: api_error
          message: "the provider broke its answer off (%RESPONSE_CODE_DETAILS%)"
"""

GHOST_PROVIDERS = (
    '{"name": "ghost", "type": "openai", "cluster": "no-such-cluster", "apiKeys": ["sk-ghost"]},\n'
    '                        {"name": "ghost-claude", "type": "anthropic", "cluster": "no-such-claude",'
    ' "apiKeys": ["sk-ghost"]},\n                        ')
GHOST_RULES = ('{"match": "ghost-gpt", "provider": "ghost"}, '
               '{"match": "ghost-claude", "provider": "ghost-claude"},\n                        ')


def edited_chain(edits: list[tuple[str, str]], workdir: Path) -> Path:
    """full-chain.yaml with each `(anchor, text)` inserted before its (unique) anchor."""
    text = (gateway.ENVOY_CONFIGS / "full-chain.yaml").read_text(encoding="utf-8")
    for anchor, inserted in edits:
        assert text.count(anchor) == 1, f"full-chain.yaml no longer has exactly one {anchor!r}"
        text = text.replace(anchor, inserted + anchor)
    template = workdir / "full-chain-variant.yaml"
    template.write_text(text, encoding="utf-8")
    return template


@pytest.fixture(scope="module")
def variant_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gateway.Gateway]:
    """The full chain plus two providers whose clusters Envoy lacks (`ghost-gpt` -> OpenAI type,
    `ghost-claude` -> Anthropic type)."""
    template = edited_chain([
        ('{"name": "openai", "type": "openai", "cluster": "openai"', GHOST_PROVIDERS),
        ('{"match": "sim-model", "provider": "openai"}', GHOST_RULES),
    ], tmp_path_factory.mktemp("variant-template"))
    yield from start_gateway(str(template), tmp_path_factory)


def envoy_log_lines(gw: Any, needle: str) -> list[str]:
    """Envoy's log lines holding `needle`."""
    text = gw.envoy.log.read_text(encoding="utf-8", errors="replace")
    return [line for line in text.splitlines() if needle in line]


def wait_for_log(gw: Any, needle: str, count: int) -> list[str]:
    """Envoy's log lines holding `needle`, once there are `count` of them (or after 5 s)."""
    deadline = time.monotonic() + 5
    lines = envoy_log_lines(gw, needle)
    while len(lines) < count and time.monotonic() < deadline:
        time.sleep(0.05)
        lines = envoy_log_lines(gw, needle)
    return lines


def test_a_provider_cluster_envoy_lacks_is_named_in_each_sdks_error(variant_gateway: Any) -> None:
    needle = "Envoy has no cluster `no-such-cluster` (provider `ghost`)"
    before = len(envoy_log_lines(variant_gateway, needle))
    with pytest.raises(openai.InternalServerError) as raised:
        oai(variant_gateway).chat.completions.create(
            model="ghost-gpt", messages=[{"role": "user", "content": "hi"}])
    assert raised.value.status_code == 503, raised.value
    assert raised.value.code == "cluster_not_found", raised.value.body
    assert needle in str(raised.value.body), raised.value.body
    # Logged once at warning, with the cluster's name.
    logged = wait_for_log(variant_gateway, needle, before + 1)
    assert len(logged) == before + 1 and "[warning]" in logged[-1], logged

    # Translated routes and the Anthropic SDK get the same news in their own shape.
    with pytest.raises(openai.InternalServerError) as raised:
        oai(variant_gateway).chat.completions.create(
            model="ghost-claude", messages=[{"role": "user", "content": "hi"}])
    assert "cluster `no-such-claude` (provider `ghost-claude`)" in str(raised.value.body)
    with pytest.raises(anthropic.InternalServerError) as raised_a:
        claude(variant_gateway).messages.create(
            model="ghost-claude", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    body = raised_a.value.body
    assert isinstance(body, dict) and body["type"] == "error", body
    assert body["error"]["type"] == "api_error", body
    assert "Envoy has no cluster `no-such-claude`" in body["error"]["message"], body


# (client, model) pairs whose answer ai-proxy translates and holds until it is complete.
HELD = [("openai", "claude-haiku-4-5"), ("openai", "bedrock-nova"), ("anthropic", "gpt-4o-mini")]


def held_request(gw: Any, client: str, model: str, **headers: str) -> Any:
    if client == "openai":
        return oai(gw, **headers).chat.completions.create(
            model=model, messages=[{"role": "user", "content": "one two three four five"}])
    return claude(gw, **headers).messages.create(
        model=model, max_tokens=50, messages=[{"role": "user", "content": "one two three four five"}])


@pytest.mark.parametrize("client,model", HELD, ids=[f"{c}-{m}" for c, m in HELD])
def test_a_held_answer_broken_off_mid_body_is_a_502_in_the_sdks_shape(
        chain_gateway: Any, client: str, model: str) -> None:  # noqa: F811
    # The shipped configs carry the local reply mapper (RESET_REPLY_MAPPER): without it Envoy's
    # own text/plain 502 reaches the client.
    started = time.monotonic()
    with pytest.raises((openai.APIStatusError, anthropic.APIStatusError)) as raised:
        held_request(chain_gateway, client, model, **{"x-sim-reset-after-bytes": "20"})
    assert time.monotonic() - started < TIMEOUT / 2
    error = raised.value
    assert error.status_code == 502, error
    assert error.response.headers["content-type"] == "application/json", error.response.headers
    if client == "openai":
        # The OpenAI SDK reads `error` (message, type); the extra top-level `type` is ignored.
        assert isinstance(error, openai.InternalServerError), repr(error)
        assert isinstance(error.body, dict), error.body
        assert error.body["message"].startswith("the provider broke its answer off"), error.body
        assert error.body["type"] == "api_error", error.body
    else:
        assert isinstance(error, anthropic.InternalServerError), repr(error)
        body = error.body
        assert isinstance(body, dict) and body["type"] == "error", body
        assert body["error"]["type"] == "api_error", body
        assert "upstream_reset_after_response_started" in body["error"]["message"], body
    # Answers that are not broken are untouched by the mapper.
    assert held_request(chain_gateway, client, model) is not None


def test_the_shipped_configs_carry_the_reset_reply_mapper() -> None:
    for name in ("full-chain.yaml", "ai-proxy.yaml"):
        text = (gateway.ENVOY_CONFIGS / name).read_text(encoding="utf-8")
        lines = [line.strip() for line in text.splitlines()]
        for wanted in RESET_REPLY_MAPPER.splitlines():
            assert wanted.strip() in lines, f"{name} lacks {wanted.strip()!r}"
