"""The shipped gateway configs: every Envoy template validates, and every plugin has its place."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import yaml

import aigw_gateway as gateway

# Request order of the full chain (DESIGN.md section 5).
CHAIN_ORDER = ["ai-usage-stats", "ai-token-ratelimit", "ai-content-moderation", "ai-semantic-cache",
               "ai-prompt-decorator", "ai-proxy", "ai-load-balancer"]
PLUGINS = sorted(p.parent.name for p in (gateway.REPO_ROOT / "plugins").glob("*/Cargo.toml"))
TEMPLATES = gateway.envoy_templates()


def wasm_filter_names(template: Path) -> list[str]:
    """`root_id` of every wasm filter in a template, in filter order."""
    rendered = gateway.render(template.read_text(encoding="utf-8"),
                              gateway.envoy_values(1, 2, 3))
    config = yaml.safe_load(rendered)
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    filters = hcm["typed_config"]["http_filters"]
    return [f["typed_config"]["config"]["root_id"] for f in filters
            if f["typed_config"]["@type"].endswith("envoy.extensions.filters.http.wasm.v3.Wasm")]


@pytest.mark.parametrize("template", TEMPLATES, ids=[t.name for t in TEMPLATES])
def test_envoy_config_passes_envoy_validate(template: Path, tmp_path: Path) -> None:
    rendered = gateway.render_template(template, tmp_path / template.name,
                                       gateway.envoy_values(*gateway.free_ports(3)))
    ok, output = gateway.validate_envoy_config(rendered)
    assert ok, output


def test_plugins_with_an_envoy_config_run_alone_there() -> None:
    configured = [p for p in PLUGINS if (gateway.ENVOY_CONFIGS / f"{p}.yaml").is_file()]
    assert configured, "no plugin has an envoy-configs/<plugin>.yaml"
    for plugin in configured:
        assert wasm_filter_names(gateway.ENVOY_CONFIGS / f"{plugin}.yaml") == [plugin]
    unconfigured = sorted(set(PLUGINS) - set(configured))
    if unconfigured:
        warnings.warn(f"plugins without envoy-configs/<plugin>.yaml (not run by e2e): {unconfigured}")


def test_full_chain_has_every_configured_plugin_once_in_the_design_order() -> None:
    configured = {p for p in PLUGINS if (gateway.ENVOY_CONFIGS / f"{p}.yaml").is_file()}
    chain = wasm_filter_names(gateway.ENVOY_CONFIGS / "full-chain.yaml")
    assert sorted(chain) == sorted(configured), "full-chain.yaml must hold each configured plugin"
    assert chain == [p for p in CHAIN_ORDER if p in chain], f"order is DESIGN.md section 5: {chain}"


@pytest.mark.parametrize("folder", ["higress-configs", "apisix-configs"])
def test_other_gateway_configs_are_valid_yaml(folder: str) -> None:
    files = sorted((gateway.REPO_ROOT / folder).glob("*.yaml"))
    assert files
    for path in files:
        assert list(yaml.safe_load_all(path.read_text(encoding="utf-8"))), path
