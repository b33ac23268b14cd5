#!/usr/bin/env python3
"""`make run`: llm-sim plus Envoy (2 workers) with the full plugin chain, until Ctrl-C.

Usage: scripts/run_gateway.py [--config envoy-configs/full-chain.yaml] [--port N]
Rendered config and logs go to .run/ in the repository. Ctrl-C (or SIGTERM) stops Envoy and
llm-sim by their pids and waits for both.

The full chain's ai-proxy routes by model to six simulated providers, all served by llm-sim
(which checks each provider's credential): `gpt-*` and `sim-model` to OpenAI, `claude-*` to
Anthropic, `bedrock-*`, `amazon.*`, `anthropic.claude*` and `us.*` to Bedrock Converse (SigV4),
`gemini-*` to the Gemini API.
Clients use either the OpenAI or the Anthropic API with any key; the key is replaced by the
provider's. With OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY or AWS_BEARER_TOKEN_BEDROCK
set, the chain runs in front of those real providers instead (envoy-configs/real-providers.yaml,
scripts/real_providers.py).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aigw_gateway as gateway  # noqa: E402
import real_providers  # noqa: E402
import semantic_services  # noqa: E402

STOP = threading.Event()
DEFAULT_CONFIG = gateway.ENVOY_CONFIGS / "full-chain.yaml"


def wasm_filters(config: Path) -> list[str]:
    """The names of the wasm filters in a rendered config, in request order (best effort)."""
    names = []
    for line in config.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("root_id:"):
            names.append(stripped.split(":", 1)[1].strip())
    return names


def usage_text(gw: gateway.Gateway) -> str:
    """How to call the running gateway: curl, the OpenAI and the Anthropic Python SDKs."""
    chain = " -> ".join([*wasm_filters(gw.config), "router"]) if gw.config else "?"
    url = gw.base_url
    return f"""
AI gateway is up (Envoy pid {gw.envoy.pid if gw.envoy else '?'}, llm-sim pid {gw.sim.pid if gw.sim else '?'}).
  chain:    {chain}
  gateway:  {url}    admin: {gw.admin_url}    llm-sim: {gw.sim_url}
  config:   {gw.config}
  logs:     {gw.workdir}/envoy.log  {gw.workdir}/llm-sim.log

One door, six simulated providers chosen by model (ai-proxy):
  gpt-4o-mini, gpt-*, sim-model  -> OpenAI     (Bearer sk-sim-openai)
  claude-haiku-4-5, claude-*     -> Anthropic  (x-api-key sk-sim-anthropic), translated as needed
  bedrock-nova, amazon.*, ...    -> Bedrock Converse (SigV4), translated
  gemini-2.0-flash, gemini-*     -> Gemini API (x-goog-api-key sim-gemini-key), translated
  azure-gpt-4o, azure-*          -> Azure OpenAI deployment (api-key sim-azure-key)
  vertex-flash, vertex-*         -> Vertex AI gemini-2.5-flash (Bearer sim-vertex-token), translated
Any client key works; ai-proxy removes it and sends the provider's credential.

curl (OpenAI format; change "model" to reach another provider):
  curl -sS {url}/v1/chat/completions -H 'content-type: application/json' \\
    -H 'authorization: Bearer any-key' \\
    -d '{{"model": "claude-haiku-4-5", "messages": [{{"role": "user", "content": "Hello!"}}]}}'
  curl -sSN {url}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{{"model": "bedrock-nova", "stream": true, "messages": [{{"role": "user", "content": "Hello!"}}]}}'

OpenAI Python SDK (.venv/bin/python):
  from openai import OpenAI
  client = OpenAI(base_url="{url}/v1", api_key="any-key")
  for model in ("gpt-4o-mini", "claude-haiku-4-5", "bedrock-nova", "gemini-2.0-flash"):
      reply = client.chat.completions.create(
          model=model, messages=[{{"role": "user", "content": "Hello!"}}])
      print(model, "->", reply.choices[0].message.content)

Fallback (ai-proxy): gpt-4o-fallback's provider is down (nothing listens on its cluster); the
  request is answered by its fallback target, Anthropic claude-haiku-4-5, translated back
  (x-aigw-attempts: 2, x-aigw-upstream-model: claude-haiku-4-5):
  curl -s -D - {url}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{{"model": "gpt-4o-fallback", "messages": [{{"role": "user", "content": "Hello!"}}]}}'
The auto model (ai-proxy): a simple prompt goes to gpt-4o-mini, code or a long prompt to
  claude-haiku-4-5 (x-aigw-upstream-model names the choice):
  curl -s -D - {url}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{{"model": "auto", "messages": [{{"role": "user", "content": "Fix: ```print(1/0)```"}}]}}'

OpenAI Responses API (native for OpenAI, translated for the other providers, streamed or not):
  reply = client.responses.create(model="claude-haiku-4-5", instructions="Be brief.", input="Hello!")
  print(reply.output_text)

Anthropic Python SDK (.venv/bin/python):
  import anthropic
  client = anthropic.Anthropic(base_url="{url}", api_key="any-key")
  with client.messages.stream(model="gpt-4o-mini", max_tokens=200,
                              messages=[{{"role": "user", "content": "Hello!"}}]) as stream:
      print("".join(stream.text_stream))
  print(client.messages.count_tokens(model="claude-haiku-4-5",
                                     messages=[{{"role": "user", "content": "Hello!"}}]).input_tokens)

llm-sim answers "sim: " plus the last user message, which is the decorator's appended one;
what llm-sim received (path, provider credential, decorated body): curl -s {gw.sim_url}/_sim/requests
Moderation (ai-content-moderation): "forbidden-word" is refused (400, rule deny:demo), a card
  number too; an e-mail address reaches the model as [EMAIL_1] (see llm-sim's journal) and any
  placeholder in the answer is put back:
  curl -sS {url}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{{"model": "gpt-4o-mini", "messages": [{{"role": "user", "content": "say forbidden-word"}}]}}'
Cache (ai-semantic-cache, on for host cached.local): ask, then rephrase; the second answer comes
  from the cache (x-aigw-cache: hit, x-aigw-cache-tier: semantic, x-aigw-cache-similarity) and
  llm-sim's journal shows one request:
  curl -s -D - {url}/v1/chat/completions -H 'host: cached.local' -H 'content-type: application/json' \\
    -d '{{"model": "gpt-4o-mini", "messages": [{{"role": "user", "content": "How do I reset my password?"}}]}}'
  curl -s -D - {url}/v1/chat/completions -H 'host: cached.local' -H 'content-type: application/json' \\
    -d '{{"model": "gpt-4o-mini", "messages": [{{"role": "user", "content": "What are the steps to reset my password?"}}]}}'
Metrics: curl -s {gw.admin_url}/stats/prometheus | grep aigw
Usage (ai-usage-stats; tokens, cost, errors, latency by provider/model/route/consumer; send
  -H 'x-aigw-consumer: team-a' to name the caller; histograms appear after the next stats flush, 5 s):
  curl -s {gw.admin_url}/stats/prometheus | grep -E '^aigw_gen_ai_(requests|tokens|cost_micro_usd|errors)_total'
  curl -s {gw.admin_url}/stats/prometheus | grep aigw_gen_ai_server_time_to_first_token_ms_sum
  audit records (one JSON line per request): grep 'ai-usage-stats: {{' {gw.workdir}/envoy.log
Token rate limit (ai-token-ratelimit): consumer demo-limited has 300 tokens a minute (5 a second);
  each request reserves its prompt estimate + max_tokens (here 256) and gets back what it did not
  use, so the first of these is admitted and the next get 429 with Retry-After until the refill
  makes room again (every answer carries x-ratelimit-* headers):
  for i in 1 2 3; do curl -s -o /dev/null -D - {url}/v1/chat/completions \\
    -H 'x-aigw-consumer: demo-limited' -H 'content-type: application/json' \\
    -d '{{"model": "gpt-4o-mini", "max_tokens": 250, "messages": [{{"role": "user", "content": "Hello!"}}]}}' \\
    | grep -i -E '^HTTP|x-ratelimit-remaining-tokens|retry-after'; done
Load balancer (ai-load-balancer): models fleet-* go to three simulated vLLM pods; requests that
  share a prompt prefix stick to one pod and hit its KV cache (x-sim-pod names the pod,
  x-sim-cached-tokens what its cache held; ai-proxy adds x-aigw-upstream: fleet):
  for q in one two three; do curl -s -o /dev/null -D - {url}/v1/chat/completions \\
    -H 'content-type: application/json' -d '{{"model": "fleet-llama", "messages": [
    {{"role": "system", "content": "You answer questions about the Example Corp catalogue: plans, prices, support hours and shipping, briefly and politely."}},
    {{"role": "user", "content": "question '"$q"'"}}]}}' | grep -i -E '^x-sim-(pod|cached-tokens)'; done
Press Ctrl-C to stop.
"""


def real_usage_text(gw: gateway.Gateway, providers: list[str]) -> str:
    """How to call the gateway in front of the real providers."""
    chain = " -> ".join([*wasm_filters(gw.config), "router"]) if gw.config else "?"
    url = gw.base_url
    model = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.0-flash",
             "bedrock": "amazon.nova-micro-v1:0"}.get(providers[0], "gpt-4o-mini")
    return f"""
AI gateway is up in front of the REAL providers whose key is set: {", ".join(providers)}
(envoy-configs/real-providers.yaml; unset OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY and
AWS_BEARER_TOKEN_BEDROCK to use the simulated providers instead). Requests cost real money.
  chain:    {chain}
  gateway:  {url}    admin: {gw.admin_url}
  config:   {gw.config}
  logs:     {gw.workdir}/envoy.log

Models by prefix: gpt-*, text-embedding-* -> OpenAI; claude-* -> Anthropic; gemini-* -> Gemini;
amazon.*, us.* -> Bedrock (us-east-1). Any client key works; ai-proxy sends the provider's.
  curl -s {url}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{{"model": "{model}", "max_tokens": 50, "messages": [{{"role": "user", "content": "Hello!"}}]}}'
  curl -s {gw.admin_url}/stats/prometheus | grep -E '^aigw_gen_ai_(requests|tokens|cost_micro_usd)_total'
Press Ctrl-C to stop.
"""


def main() -> int:
    """Start everything, print how to use it, wait for a signal or a crash, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--port", type=int, help="Envoy listener port (default: a free one)")
    args = parser.parse_args()
    real = None
    if args.config == DEFAULT_CONFIG:
        real = real_providers.template_for(gateway.REPO_ROOT / ".run")
    if real is not None:
        args.config = real[0]

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: STOP.set())
    workdir = gateway.REPO_ROOT / ".run"
    # ai-semantic-cache's embedder and Chroma, for templates that name their ports.
    helpers: list[gateway.Process] = []
    values: dict[str, object] = {}
    status = 0
    try:
        if "${EMBEDDER_PORT}" in args.config.read_text(encoding="utf-8"):
            workdir.mkdir(parents=True, exist_ok=True)
            embedder, values["EMBEDDER_PORT"] = semantic_services.start_embedder(workdir)
            helpers.append(embedder)
            chroma, values["VECTOR_STORE_PORT"] = semantic_services.start_chroma(workdir)
            helpers.append(chroma)
        if "${FLEET_PORT}" in args.config.read_text(encoding="utf-8"):
            # ai-load-balancer's simulated vLLM fleet: three pods on 127.0.0.1-3, one port.
            fleet, values["FLEET_PORT"] = gateway.start_llm_sim(
                workdir / "fleet", ["--fleet", "3", "--fleet-spread", "--fleet-decode-us", "2000"])
            helpers.append(fleet)
    except gateway.GatewayError as err:
        print(f"make run: {err}", file=sys.stderr)
        for proc in helpers:
            proc.stop()
        return 1
    gw = gateway.Gateway(args.config, workdir, listen_port=args.port, values=values)
    try:
        gw.start()
        print(usage_text(gw) if real is None else real_usage_text(gw, real[1]), flush=True)
        while not STOP.wait(0.5):
            crashed = [p for p in (gw.envoy, gw.sim, *helpers) if p is not None and not p.running()]
            if crashed:
                print(f"{crashed[0].name} exited unexpectedly:\n{crashed[0].log_tail()}",
                      file=sys.stderr)
                status = 1
                break
    except gateway.GatewayError as err:
        print(f"make run: {err}", file=sys.stderr)
        status = 1
    finally:
        print("stopping Envoy and llm-sim ...", flush=True)
        gw.stop()
        for proc in helpers:
            proc.stop()
        print("stopped.")
    return status


if __name__ == "__main__":
    sys.exit(main())
