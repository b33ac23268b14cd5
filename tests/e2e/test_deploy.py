"""deploy/: the Prometheus rules and the Grafana dashboard are checked against real tools and a
real Envoy. `promtool check rules` parses the rules, `promtool test rules` runs their unit tests
(deploy/prometheus/aigw-rules.test.yaml), every dashboard query is parsed by promtool too (as a
recording rule, with Grafana's variables filled in), and every metric name the rules and the
dashboard read is one that Envoy with ai-usage-stats really exports after traffic.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator

import openai
import pytest
import yaml

import aigw_gateway as gateway
from conftest import start_gateway

DEPLOY = gateway.REPO_ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "aigw-rules.yaml"
RULES_TEST = DEPLOY / "prometheus" / "aigw-rules.test.yaml"
DASHBOARD = DEPLOY / "grafana" / "aigw-dashboard.json"

# What Grafana puts in for its variables, for parsing only.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__range": "6h", "$provider": ".*", "$model": ".*",
                "$route": ".*", "$consumer": ".*"}


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: `make deps` installs the Debian prometheus package"
    return found


def run_promtool(*args: str) -> str:
    done = subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def dashboard_queries() -> list[str]:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [v["query"]["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    return exprs


def rule_exprs() -> list[str]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [r["expr"] for g in groups for r in g["rules"]]


def metric_names(expr: str) -> set[str]:
    """The raw `aigw_gen_ai_*` series an expression reads (histogram suffixes kept)."""
    return set(re.findall(r"\baigw_gen_ai_\w+", expr))


def test_the_rules_parse() -> None:
    out = run_promtool("check", "rules", str(RULES))
    assert "SUCCESS" in out and "12 rules found" in out, out


def test_the_rule_unit_tests_pass() -> None:
    out = run_promtool("test", "rules", str(RULES_TEST))
    assert "SUCCESS" in out, out


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 12
    lines = ["groups:", "- name: dashboard", "  rules:"]
    for i, q in enumerate(queries):
        for var, value in GRAFANA_VARS.items():
            q = q.replace(var, value)
        if q.startswith("label_values("):  # a Grafana function: check its metric and label
            m = re.fullmatch(r"label_values\((aigw_gen_ai_\w+), (\w+)\)", q)
            assert m, q
            q = f"count by ({m.group(2)}) ({m.group(1)})"
        lines += [f"  - record: dashboard:query_{i}", f"    expr: {json.dumps(q)}"]
    check = tmp_path / "dashboard-queries.yaml"
    check.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = run_promtool("check", "rules", str(check))
    assert f"{len(queries)} rules found" in out, out


@pytest.fixture(scope="module")
def usage_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gateway.Gateway]:
    yield from start_gateway("ai-usage-stats.yaml", tmp_path_factory)


def exported_names(gw: gateway.Gateway) -> set[str]:
    status, text = gateway.http_get(f"{gw.admin_url}/stats/prometheus")
    assert status == 200
    return {m.group(1) for m in re.finditer(r"^(aigw_gen_ai_\w+)\{", text, re.M)}


def test_every_metric_the_rules_and_dashboard_read_is_exported_by_envoy(
        usage_gateway: gateway.Gateway) -> None:
    def client(**headers: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{usage_gateway.base_url}/v1", api_key="sk-e2e",
                             max_retries=0, timeout=20.0,
                             default_headers={"x-aigw-consumer": "team-deploy", **headers})
    messages = [{"role": "user", "content": "Say hello"}]
    client().chat.completions.create(model="gpt-4o-mini", messages=messages)
    for chunk in client().chat.completions.create(
            model="gpt-4o-mini", messages=messages, stream=True,
            stream_options={"include_usage": True}):
        del chunk
    # No usage in the stream: estimated.
    for chunk in client().chat.completions.create(model="gpt-4o-mini", messages=messages,
                                                  stream=True):
        del chunk
    with pytest.raises(openai.APIStatusError):
        client(**{"x-sim-error-status": "503"}).chat.completions.create(
            model="gpt-4o-mini", messages=messages)

    wanted: set[str] = set()
    for expr in dashboard_queries() + rule_exprs():
        wanted |= metric_names(expr)
    assert {"aigw_gen_ai_requests_total", "aigw_gen_ai_errors_total",
            "aigw_gen_ai_server_time_to_first_token_ms_bucket"} <= wanted, wanted
    deadline = time.monotonic() + 10.0
    while (missing := wanted - exported_names(usage_gateway)) and time.monotonic() < deadline:
        time.sleep(0.3)  # histograms appear at the next stats flush
    assert not missing, f"read by deploy/ but not exported by Envoy: {sorted(missing)}"
