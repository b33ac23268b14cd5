#!/usr/bin/env python3
"""`make bench-lb`: ai-load-balancer against Envoy's round robin and least request on a
multi-turn chat workload with a shared system prompt, in one run; writes bench/lb-results.md
(and bench/lb-results.json).

One Envoy (2 workers, bench/lb-envoy.yaml) in front of one simulated fleet (llm-sim fleet mode:
BENCH_LB_PODS (4) vLLM-like pods with an LRU prefix KV cache, a queue and ORCA load headers); the header
`x-bench-lb` picks the strategy per request, so all three see the same Envoy, the same pods and
the same workload. Before each strategy's run every pod's cache and counters are reset.

Workload: CONVERSATIONS conversations of TURNS turns each, CONCURRENCY of them at a time (a
user sends the next turn when the answer is complete), spread over APPS applications, each with
its own long system prompt that all its conversations share. Every request carries its
application's system prompt, the conversation so far and a new user message, streams (`stream_options.include_usage`)
and asks for ANSWER_TOKENS tokens. Measured per request at the client: time to first token (the
first content chunk), and from the usage the pod reports, prompt and cached tokens.

Reported per strategy: prefix-cache hit rate (cached / prompt tokens), mean and p90 time to first
token, requests per second and output tokens per second over the run's wall time; rounds run in
rotated order and the table shows the mean over rounds. Everything started here is stopped by pid.

Environment: BENCH_LB_PODS (4), BENCH_LB_CACHE_BLOCKS (480), BENCH_LB_APPS (8,1: the workloads' application counts), BENCH_LB_ROUNDS (2), BENCH_LB_CONVERSATIONS (48), BENCH_LB_TURNS (8),
BENCH_LB_CONCURRENCY (16), BENCH_LB_OUT (default bench/lb-results.md).
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import random
import statistics
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aigw_gateway as gateway  # noqa: E402

REPO = gateway.REPO_ROOT
TEMPLATE = REPO / "bench" / "lb-envoy.yaml"
OUT = Path(os.environ.get("BENCH_LB_OUT", REPO / "bench" / "lb-results.md"))
ROUNDS = int(os.environ.get("BENCH_LB_ROUNDS", "2"))
CONVERSATIONS = int(os.environ.get("BENCH_LB_CONVERSATIONS", "48"))
TURNS = int(os.environ.get("BENCH_LB_TURNS", "8"))
CONCURRENCY = int(os.environ.get("BENCH_LB_CONCURRENCY", "16"))
ANSWER_TOKENS = 32
SYSTEM_WORDS = 600
# Tokens of a system message as llm-sim counts them: "system:", the words of its intro and prompt.
SYSTEM_TOKENS = SYSTEM_WORDS + 7
# Applications (each with its own system prompt) per workload: the main one, then one shared prompt.
WORKLOADS = [int(a) for a in os.environ.get("BENCH_LB_APPS", "8,1").split(",")]
USER_WORDS = 100
PODS = int(os.environ.get("BENCH_LB_PODS", "4"))
CACHE_BLOCKS = int(os.environ.get("BENCH_LB_CACHE_BLOCKS", "480"))
# The fleet: PODS equal pods, 16-token blocks, CACHE_BLOCKS blocks of KV cache each, 4 running
# slots, 300 us of prefill per uncached prompt token, 2 ms per output token.
FLEET = ["--fleet", str(PODS), "--fleet-spread", "--fleet-cache-blocks", str(CACHE_BLOCKS),
         "--fleet-block-tokens", "16", "--fleet-max-running", "4", "--fleet-prefill-us", "300",
         "--fleet-decode-us", "2000", "--fleet-base-us", "5000", "--quiet"]
STRATEGIES = ["plugin", "round-robin", "least-request"]
LABELS = {"plugin": "ai-load-balancer", "round-robin": "round robin (Envoy)",
          "least-request": "least request (Envoy)"}


def words(rng: random.Random, n: int, vocab: list[str]) -> str:
    return " ".join(rng.choice(vocab) for _ in range(n))


def make_workload(apps: int) -> list[tuple[str, list[str]]]:
    """Each conversation's system prompt (one per application, shared by its conversations) and
    user messages (deterministic)."""
    rng = random.Random(14)
    vocab = [f"w{i}" for i in range(5000)]
    systems = [f"You are the assistant of application {a}. " + words(rng, SYSTEM_WORDS, vocab)
               for a in range(apps)]
    return [(systems[c % apps], [words(rng, USER_WORDS, vocab) for _ in range(TURNS)])
            for c in range(CONVERSATIONS)]


def stream_chat(port: int, strategy: str, messages: list[dict]) -> dict:
    """One streamed request; returns ttft (s), answer text, prompt and cached tokens."""
    body = json.dumps({"model": "sim-chat", "stream": True, "max_tokens": ANSWER_TOKENS,
                       "stream_options": {"include_usage": True}, "messages": messages})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    start = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body=body,
                 headers={"content-type": "application/json", "x-bench-lb": strategy})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"{strategy}: status {resp.status}: {resp.read()[:300]!r}")
    pod = resp.getheader("x-sim-pod", "")
    ttft = None
    text = []
    usage = {}
    for raw in resp:
        line = raw.strip()
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        event = json.loads(line[6:])
        for choice in event.get("choices", []):
            piece = choice.get("delta", {}).get("content")
            if piece:
                if ttft is None:
                    ttft = time.perf_counter() - start
                text.append(piece)
        if event.get("usage"):
            usage = event["usage"]
    conn.close()
    return {"ttft": ttft if ttft is not None else time.perf_counter() - start,
            "text": "".join(text), "pod": pod, "prompt": usage.get("prompt_tokens", 0),
            "cached": usage.get("prompt_tokens_details", {}).get("cached_tokens", 0),
            "completion": usage.get("completion_tokens", 0)}


def run_strategy(port: int, strategy: str, convs: list[tuple[str, list[str]]]) -> dict:
    """Every conversation through one strategy; per-request samples and the wall time."""
    samples: list[dict] = []
    lock = threading.Lock()

    def conversation(system: str, users: list[str]) -> None:
        messages = [{"role": "system", "content": system}]
        previous = None
        for user in users:
            messages.append({"role": "user", "content": user})
            r = stream_chat(port, strategy, messages)
            messages.append({"role": "assistant", "content": r["text"]})
            r["same_pod"] = previous is not None and r["pod"] == previous
            r["later_turn"] = previous is not None
            previous = r["pod"]
            with lock:
                samples.append(r)

    start = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        for f in [pool.submit(conversation, system, users) for system, users in convs]:
            f.result()
    wall = time.perf_counter() - start
    ttfts = sorted(s["ttft"] for s in samples)
    prompt = sum(s["prompt"] for s in samples)
    cached = sum(s["cached"] for s in samples)
    later = [s for s in samples if s["later_turn"]]
    cached_history = sum(max(0, s["cached"] - SYSTEM_TOKENS) for s in samples)
    history = sum(max(0, s["prompt"] - SYSTEM_TOKENS) for s in samples)
    return {"requests": len(samples), "wall_s": wall,
            "same_pod": sum(s["same_pod"] for s in later) / len(later) if later else 0.0,
            "hit_rate": cached / prompt if prompt else 0.0,
            "history_hit_rate": cached_history / history if history else 0.0,
            "ttft_mean_ms": statistics.fmean(ttfts) * 1000,
            "ttft_p90_ms": ttfts[int(0.9 * (len(ttfts) - 1))] * 1000,
            "req_per_s": len(samples) / wall,
            "out_tok_per_s": sum(s["completion"] for s in samples) / wall}


def reset_fleet(port: int) -> None:
    for i in range(PODS):
        req = urllib.request.Request(f"http://127.0.0.{i + 1}:{port}/_sim/fleet/reset",
                                     data=b"", method="POST")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=10) as resp:
            assert resp.status == 200


def pod_requests(port: int) -> list[int]:
    counts = []
    for i in range(PODS):
        status, body = gateway.http_get(f"http://127.0.0.{i + 1}:{port}/_sim/fleet")
        counts.append(json.loads(body)["stats"]["requests"] if status == 200 else -1)
    return counts


def mean_of(rounds: list[dict], key: str) -> float:
    return statistics.fmean(r[key] for r in rounds)


def table(apps: int, results: dict[str, list[dict]], pods: dict[str, list[int]]) -> list[str]:
    rr = {k: mean_of(results["round-robin"], k) for k in ("hit_rate", "ttft_mean_ms")}
    what = (f"{apps} applications, each with its own {SYSTEM_WORDS}-token system prompt shared by "
            "its conversations" if apps > 1 else f"One application: one {SYSTEM_WORDS}-token system "
            "prompt shared by all conversations")
    lines = [
        f"### {what}",
        "",
        "| strategy | requests | prefix-cache hit rate | hit rate after the system prompt | "
        "same pod as the last turn | mean TTFT (ms) | p90 TTFT (ms) | requests/s | output tokens/s | "
        "hit rate vs RR | mean TTFT vs RR |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in STRATEGIES:
        rs = results[s]
        hit, ttft = mean_of(rs, "hit_rate"), mean_of(rs, "ttft_mean_ms")
        lines.append(
            f"| {LABELS[s]} | {sum(r['requests'] for r in rs) // len(rs)} | {hit:.1%} | "
            f"{mean_of(rs, 'history_hit_rate'):.1%} | {mean_of(rs, 'same_pod'):.0%} | {ttft:.1f} | "
            f"{mean_of(rs, 'ttft_p90_ms'):.1f} | {mean_of(rs, 'req_per_s'):.1f} | "
            f"{mean_of(rs, 'out_tok_per_s'):.0f} | "
            f"{hit / rr['hit_rate'] if rr['hit_rate'] else 0:.2f}× | {ttft / rr['ttft_mean_ms']:.2f}× |")
    lines += ["", f"Requests per pod in the last round (pod-0 … pod-{PODS - 1}): " + "; ".join(
        f"{LABELS[s]} {pods[s]}" for s in STRATEGIES), ""]
    return lines


def write_results(all_results: dict[int, dict], meta: dict) -> None:
    lines = [
        "# `make bench-lb`: ai-load-balancer vs Envoy's round robin and least request",
        "",
        f"Run {meta['date']} on {meta['machine']} (load average {meta['load_start']} at the start, "
        f"{meta['load_end']} at the end; other sessions' builds may have been running: compare rows "
        "of one table, not runs). Produced by `make bench-lb` (scripts/bench_lb.py).",
        "",
        f"Each workload: {CONVERSATIONS} conversations × {TURNS} turns, {CONCURRENCY} at a time (the "
        f"next turn is sent when the answer is complete), {USER_WORDS}-token user turns, "
        f"{ANSWER_TOKENS}-token streamed answers, each request carrying its system prompt and the "
        f"conversation so far. Fleet: {PODS} simulated vLLM pods (llm-sim fleet mode: "
        f"{CACHE_BLOCKS} × 16-token KV blocks (LRU), 4 running slots, 300 µs prefill per uncached "
        "prompt token, 2 ms per output token, ORCA load headers). One Envoy (2 workers); the "
        "strategy is chosen per request by a header, so all three share Envoy, pods and workload; "
        f"the pods' caches are reset before each strategy. Mean of {ROUNDS} rounds in rotated order. "
        "TTFT is measured at the client (first content chunk).",
        "",
        "The plugin runs with its defaults except `saturation.policy: deprioritize` (Envoy's "
        "policies never shed; a 429 would not be comparable).",
        "",
    ]
    for apps, r in all_results.items():
        lines += table(apps, r["results"], r["pods"])
    OUT.write_text("\n".join(lines), encoding="utf-8")
    OUT.with_suffix(".json").write_text(
        json.dumps({"meta": meta, "workloads": {str(k): v for k, v in all_results.items()}},
                   indent=2) + "\n", encoding="utf-8")


def render_template(workdir: Path) -> Path:
    """bench/lb-envoy.yaml with the pod list filled in (the usual placeholders are left)."""
    workdir.mkdir(parents=True, exist_ok=True)
    template = workdir / "lb-envoy.template.yaml"
    endpoints = ",".join(f'\n                      {{"address": "127.0.0.{i + 1}:${{UPSTREAM_PORT}}"}}'
                         for i in range(PODS))
    cluster = "\n".join(
        f"        - endpoint: {{address: {{socket_address: {{address: 127.0.0.{i + 1}, "
        f"port_value: ${{UPSTREAM_PORT}}}}}}}}" for i in range(PODS))
    text = TEMPLATE.read_text(encoding="utf-8")
    text = text.replace("${LB_ENDPOINTS}", endpoints).replace("${LB_CLUSTER_ENDPOINTS}", cluster)
    template.write_text(text, encoding="utf-8")
    return template


def main() -> int:
    workdir = REPO / "bench" / ".run" / "lb"
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "load_start": round(os.getloadavg()[0], 2)}
    all_results: dict[int, dict] = {}
    with gateway.Gateway(render_template(workdir), workdir, sim_args=FLEET) as gw:
        for apps in WORKLOADS:
            convs = make_workload(apps)
            results: dict[str, list[dict]] = {s: [] for s in STRATEGIES}
            pods: dict[str, list[int]] = {}
            for rnd in range(ROUNDS):
                order = STRATEGIES[rnd % 3:] + STRATEGIES[:rnd % 3]
                for strategy in order:
                    reset_fleet(gw.sim_port)
                    r = run_strategy(gw.listen_port, strategy, convs)
                    results[strategy].append(r)
                    pods[strategy] = pod_requests(gw.sim_port)
                    print(f"bench-lb: {apps} apps, round {rnd + 1}, {strategy:14} hit "
                          f"{r['hit_rate']:.1%} same pod {r['same_pod']:.0%} ttft mean "
                          f"{r['ttft_mean_ms']:.1f} ms p90 {r['ttft_p90_ms']:.1f} ms "
                          f"{r['req_per_s']:.1f} req/s", flush=True)
            all_results[apps] = {"results": results, "pods": pods}
    meta["load_end"] = round(os.getloadavg()[0], 2)
    write_results(all_results, meta)
    print(OUT.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
