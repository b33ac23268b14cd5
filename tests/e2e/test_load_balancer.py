"""ai-load-balancer in real Envoy with 2 workers (envoy-configs/ai-load-balancer.yaml) in front of
three simulated vLLM pods (llm-sim fleet mode, pod i on 127.0.0.(i+1), one port) and a fourth
address where nothing listens. Each answer names the pod that served it (`x-sim-pod`, set by the
pod; `x-aigw-endpoint`, set by the plugin) and carries the pod's ORCA load report, which the
plugin learns from.

Checked: requests sharing a long system prompt stick to one pod (and hit its KV cache); a pod
reporting a queue over the threshold is avoided; a session sticks whatever its prompt; with
ORIGINAL_DST a dead pod costs one failed request and is then skipped; with `override_host` the
retry goes down the plugin's list and the client never sees the failure; metrics.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from typing import Any, Iterator

import openai
import pytest

import aigw_gateway as gateway
from conftest import start_gateway

PODS = 3


@pytest.fixture(scope="module")
def lb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gateway.Gateway]:
    yield from start_gateway("ai-load-balancer.yaml", tmp_path_factory)


def pod_url(gw: gateway.Gateway, i: int) -> str:
    return f"http://127.0.0.{i + 1}:{gw.sim_port}"


def call(url: str, method: str = "GET", body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=30) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def system_prompt(tag: str) -> str:
    return " ".join(f"{tag}-rule-{i}" for i in range(300))


def chat(gw: gateway.Gateway, system: str, user: str, **headers: str) -> tuple[int, dict[str, str], Any]:
    body = {"model": "sim-chat", "max_tokens": 2,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]}
    status, hdrs, raw = call(f"{gw.base_url}/v1/chat/completions", "POST",
                             json.dumps(body).encode(),
                             {"content-type": "application/json", **headers})
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = raw.decode(errors="replace")
    return status, hdrs, parsed


def served_by(hdrs: dict[str, str]) -> str:
    assert "x-sim-pod" in hdrs, hdrs
    return hdrs["x-sim-pod"]


def reset_fleet(gw: gateway.Gateway) -> None:
    for i in range(PODS):
        assert call(f"{pod_url(gw, i)}/_sim/fleet/reset", "POST", b"")[0] == 200


def test_requests_sharing_a_prefix_stick_to_one_pod_and_hit_its_cache(lb: gateway.Gateway) -> None:
    system = system_prompt(f"prefix-{uuid.uuid4().hex[:6]}")
    seen = []
    cached = []
    for q in range(8):
        status, hdrs, body = chat(lb, system, f"question number {q} about plans")
        assert status == 200, body
        seen.append(served_by(hdrs))
        assert hdrs["x-aigw-endpoint"].startswith("127.0.0."), hdrs
        cached.append(body["usage"]["prompt_tokens_details"]["cached_tokens"])
    assert len(set(seen)) == 1, seen
    assert cached[0] == 0 and all(c >= 300 for c in cached[1:]), cached


def test_a_saturated_pod_is_avoided(lb: gateway.Gateway) -> None:
    system = system_prompt(f"saturated-{uuid.uuid4().hex[:6]}")
    status, hdrs, _ = chat(lb, system, "first")
    assert status == 200
    home = int(served_by(hdrs).split("-")[1])
    # The pod now reports a queue of 9 (threshold 5); the plugin learns it from the next answer.
    assert call(f"{pod_url(lb, home)}/_sim/fleet/load?waiting=9&kv=0.5", "POST", b"")[0] == 200
    try:
        status, hdrs, _ = chat(lb, system, "second")
        assert status == 200 and served_by(hdrs) == f"pod-{home}", "still sticky: not yet known"
        assert "num_requests_waiting=9" in hdrs["endpoint-load-metrics"]
        others = set()
        for q in range(6):
            status, hdrs, body = chat(lb, system, f"more {q}")
            assert status == 200, body
            others.add(served_by(hdrs))
        assert f"pod-{home}" not in others, others
    finally:
        call(f"{pod_url(lb, home)}/_sim/fleet/load", "DELETE")


def test_a_session_sticks_to_its_pod_whatever_the_prompt(lb: gateway.Gateway) -> None:
    session = f"s-{uuid.uuid4().hex[:8]}"
    client = openai.OpenAI(base_url=f"{lb.base_url}/v1", api_key="unused", max_retries=0,
                           default_headers={"x-session-id": session})
    pods = set()
    for q in range(6):
        raw = client.chat.completions.with_raw_response.create(
            model="sim-chat", max_tokens=2,
            messages=[{"role": "user", "content": f"unrelated prompt {uuid.uuid4().hex} {q}"}])
        assert raw.parse().choices[0].message.content.startswith("sim:")
        pods.add(raw.headers["x-sim-pod"])
    assert len(pods) == 1, pods


def test_streams_are_routed_and_pass_through(lb: gateway.Gateway) -> None:
    client = openai.OpenAI(base_url=f"{lb.base_url}/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="sim-chat", max_tokens=3, stream=True,
        messages=[{"role": "user", "content": "stream me"}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.startswith("sim: pod-"), text


def test_a_dead_pod_costs_one_failed_request_then_is_skipped(lb: gateway.Gateway) -> None:
    # In the `dead` pool the down pod (127.0.0.4) has the heaviest hardware weight: picked first.
    status, hdrs, body = chat(lb, system_prompt("dead"), "first", **{"x-e2e-pool": "dead"})
    assert status == 503, (status, body)
    assert hdrs.get("x-aigw-endpoint", "").startswith("127.0.0.4"), hdrs
    for q in range(6):
        status, hdrs, body = chat(lb, system_prompt("dead"), f"then {q}", **{"x-e2e-pool": "dead"})
        assert status == 200, body
        assert not hdrs["x-aigw-endpoint"].startswith("127.0.0.4")


def test_with_override_host_the_retry_goes_down_the_list(lb: gateway.Gateway) -> None:
    # The dead pool's cool-off (2 s) has passed: the down pod is a candidate again everywhere.
    time.sleep(2.2)
    for q in range(4):
        status, hdrs, body = chat(lb, system_prompt("override"), f"q {q}",
                                  **{"x-e2e-pool": "override"})
        assert status == 200, body
        assert served_by(hdrs).startswith("pod-")
    stats = call(f"{lb.admin_url}/stats?filter=cluster.fleet-override.upstream_cx_connect_fail")[2]
    fails = int(re.search(rb"upstream_cx_connect_fail: (\d+)", stats).group(1))
    assert fails == 1, "tried once, then skipped: " + stats.decode()


def test_metrics_name_decisions_and_endpoints(lb: gateway.Gateway) -> None:
    text = call(f"{lb.admin_url}/stats/prometheus")[2].decode()
    assert re.search(r'ai_load_balancer_requests_total\{decision="prefix"\} [1-9]', text), text[-3000:]
    assert re.search(r'ai_load_balancer_picks_total\{endpoint="127_0_0_1_\d+"\}', text)
    assert re.search(r'ai_load_balancer_marked_down_total\{endpoint="127_0_0_4_\d+"\} [1-9]', text)


def test_a_client_cannot_pick_the_destination(lb: gateway.Gateway) -> None:
    status, hdrs, _ = chat(lb, "x", "y", **{"x-gateway-destination-endpoint": f"127.0.0.1:{lb.admin_port}"})
    assert status == 200 and served_by(hdrs).startswith("pod-")


@pytest.fixture(scope="module")
def chain_with_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gateway.Gateway]:
    """The full chain (what `make run` starts) with its simulated fleet on FLEET_PORT."""
    workdir = tmp_path_factory.mktemp("full-chain-fleet")
    fleet, port = gateway.start_llm_sim(workdir / "fleet", ["--fleet", "3", "--fleet-spread"])
    gw = gateway.Gateway(gateway.ENVOY_CONFIGS / "full-chain.yaml", workdir,
                         values={"FLEET_PORT": port})
    try:
        gw.start()
        yield gw
    finally:
        gw.stop()
        fleet.stop()


def test_in_the_full_chain_fleet_models_stick_and_providers_pass(chain_with_fleet: gateway.Gateway) -> None:
    gw = chain_with_fleet
    system = system_prompt(f"chain-{uuid.uuid4().hex[:6]}")
    pods = []
    for q in range(4):
        body = {"model": "fleet-llama", "max_tokens": 2,
                "messages": [{"role": "system", "content": system},
                             {"role": "user", "content": f"question {q}"}]}
        status, hdrs, raw = call(f"{gw.base_url}/v1/chat/completions", "POST",
                                 json.dumps(body).encode(), {"content-type": "application/json"})
        assert status == 200, raw
        pods.append(served_by(hdrs))
    assert len(set(pods)) == 1, pods
    # A hosted provider's request is not touched: no destination header reaches llm-sim.
    sim = gw.sim_url
    call(f"{sim}/_sim/requests", "DELETE")
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}
    status, hdrs, raw = call(f"{gw.base_url}/v1/chat/completions", "POST",
                             json.dumps(body).encode(), {"content-type": "application/json"})
    assert status == 200, raw
    assert "x-aigw-endpoint" not in hdrs
    seen = json.loads(call(f"{sim}/_sim/requests")[2])
    assert seen and "x-gateway-destination-endpoint" not in seen[-1]["headers"], seen[-1]["headers"]
