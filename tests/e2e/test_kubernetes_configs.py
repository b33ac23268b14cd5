"""The Envoy Gateway and Istio examples (envoy-gateway-configs/, istio-configs/): there is no
Kubernetes here, so each wasm filter they define is loaded into real Envoy the way those control
planes hand it over (the plugin's configuration, `root_id`, environment keys and the
`allow_on_headers_stop_iteration` flag), with the built plugin in place of the OCI image, and
checked with `envoy --mode validate` (which configures the plugin). The chain order and the set of
plugins that hold headers are compared with the tested Envoy configs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

import aigw_gateway as gateway

REPO = gateway.REPO_ROOT
EG_FILE = REPO / "envoy-gateway-configs" / "aigw-chain.yaml"
ISTIO_FILE = REPO / "istio-configs" / "aigw-chain.yaml"
WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
PATCHED_ROOT_ID = re.compile(r"root_id == '([a-z0-9-]+)'")


@dataclass
class WasmFilter:
    """A wasm filter as a control plane would put it into Envoy."""

    source: str
    plugin: str
    configuration: str
    host_env_keys: list[str] = field(default_factory=list)
    stop_iteration: bool = False
    failure_policy: str | None = None


def docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def envoy_gateway_filters() -> list[WasmFilter]:
    """EnvoyExtensionPolicy wasm entries, with the flag set by the EnvoyPatchPolicy patches."""
    patched = set()
    for doc in docs(EG_FILE):
        if doc["kind"] == "EnvoyPatchPolicy":
            for patch in doc["spec"]["jsonPatches"]:
                operation = patch["operation"]
                if operation["path"].strip("/") == "allow_on_headers_stop_iteration" \
                        and operation["value"] is True:
                    patched.update(PATCHED_ROOT_ID.findall(operation["jsonPath"]))
    filters = []
    for doc in docs(EG_FILE):
        if doc["kind"] == "EnvoyExtensionPolicy":
            for entry in doc["spec"]["wasm"]:
                plugin = entry["rootID"]
                assert entry["code"]["image"]["url"].rsplit("/", 1)[-1].startswith(f"{plugin}:")
                filters.append(WasmFilter(
                    "envoy-gateway", plugin, json.dumps(entry.get("config", {})),
                    (entry.get("env") or {}).get("hostKeys", []), plugin in patched,
                    "FAIL_OPEN" if entry.get("failOpen") else None))
    return filters


def istio_filters() -> list[WasmFilter]:
    """EXTENSION_CONFIG patches, in order; each must be referenced by a following HTTP filter."""
    filters, names, inserted = [], [], []
    for doc in docs(ISTIO_FILE):
        if doc["kind"] != "EnvoyFilter":
            continue
        for patch in doc["spec"]["configPatches"]:
            value = patch["patch"]["value"]
            if patch["applyTo"] == "EXTENSION_CONFIG":
                typed = value["typed_config"]
                assert typed["@type"] == WASM_TYPE
                config = typed["config"]
                plugin = config["root_id"]
                assert config["vm_config"]["code"]["remote"]["http_uri"]["uri"] \
                    .rsplit("/", 1)[-1].startswith(f"{plugin}:")
                names.append(value["name"])
                filters.append(WasmFilter(
                    "istio", plugin, config["configuration"]["value"],
                    config["vm_config"].get("environment_variables", {}).get("host_env_keys", []),
                    bool(config.get("allow_on_headers_stop_iteration")),
                    config.get("failure_policy")))
            elif patch["applyTo"] == "HTTP_FILTER":
                assert patch["patch"]["operation"] == "INSERT_BEFORE"
                assert value["config_discovery"]["type_urls"] == [WASM_TYPE]
                inserted.append(value["name"])
    assert inserted == names, "every extension config is inserted as a filter, in the same order"
    return filters


FILTERS = envoy_gateway_filters() + istio_filters()


def full_chain_filters() -> list[tuple[str, bool]]:
    """(root_id, allow_on_headers_stop_iteration) of every wasm filter in the full-chain template."""
    rendered = gateway.render((gateway.ENVOY_CONFIGS / "full-chain.yaml").read_text(encoding="utf-8"),
                              gateway.envoy_values(1, 2, 3))
    hcm = yaml.safe_load(rendered)["static_resources"]["listeners"][0]["filter_chains"][0][
        "filters"][0]["typed_config"]
    found = []
    for http_filter in hcm["http_filters"]:
        typed = http_filter["typed_config"]
        if typed["@type"] == WASM_TYPE:
            config = typed["config"]
            found.append((config["root_id"], bool(config.get("allow_on_headers_stop_iteration"))))
    return found


@pytest.mark.parametrize("source", ["envoy-gateway", "istio"])
def test_the_chain_runs_in_the_full_chain_order_with_the_same_plugins_holding_headers(
        source: str) -> None:
    ours = [(f.plugin, f.stop_iteration) for f in FILTERS if f.source == source]
    tested = [pair for pair in full_chain_filters() if pair[0] in {p for p, _ in ours}]
    assert ours == tested
    assert len(ours) >= 5


BOOTSTRAP = """
static_resources:
  listeners:
  - name: llm
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: llm
          route_config:
            virtual_hosts:
            - {name: llm, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: upstream}}]}
          http_filters:
          - name: wasm
            typed_config: {typed_config}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: upstream
    type: STATIC
    load_assignment:
      cluster_name: upstream
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9}}}}]}]
"""


def bootstrap(wasm: WasmFilter, configuration: str) -> str:
    config = {
        "name": wasm.plugin,
        "root_id": wasm.plugin,
        "vm_config": {
            "vm_id": wasm.plugin,
            "runtime": "envoy.wasm.runtime.v8",
            "code": {"local": {"filename": str(gateway.wasm_dir() /
                                               (wasm.plugin.replace("-", "_") + ".wasm"))}},
            "environment_variables": {"host_env_keys": wasm.host_env_keys},
        },
        "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                          "value": configuration},
        "allow_on_headers_stop_iteration": wasm.stop_iteration,
    }
    if wasm.failure_policy:
        config["failure_policy"] = wasm.failure_policy
    typed = json.dumps({"@type": WASM_TYPE, "config": config})
    return BOOTSTRAP.replace("{typed_config}", typed)


def validate(wasm: WasmFilter, configuration: str, tmp_path: Path) -> tuple[bool, str]:
    path = tmp_path / f"{wasm.source}-{wasm.plugin}.yaml"
    path.write_text(bootstrap(wasm, configuration), encoding="utf-8")
    env = {key: f"validate-{key.lower()}" for key in wasm.host_env_keys}
    return gateway.validate_envoy_config(path, env)


@pytest.mark.parametrize("wasm", FILTERS, ids=[f"{f.source}-{f.plugin}" for f in FILTERS])
def test_each_plugin_config_loads_into_envoy_as_the_control_plane_hands_it_over(
        wasm: WasmFilter, tmp_path: Path) -> None:
    ok, output = validate(wasm, wasm.configuration, tmp_path)
    assert ok, output


def test_a_config_the_plugin_refuses_fails_the_same_check(tmp_path: Path) -> None:
    wasm = next(f for f in FILTERS if f.plugin == "ai-proxy")
    broken = json.dumps({**json.loads(wasm.configuration), "bogusField": 1})
    ok, output = validate(wasm, broken, tmp_path)
    assert not ok
    assert "bogusField" in output
