"""The shipped gateway configs: every Envoy template validates, and every plugin has its place."""

from __future__ import annotations

import re
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


host_env_keys = gateway.host_env_keys


@pytest.mark.parametrize("template", TEMPLATES, ids=[t.name for t in TEMPLATES])
def test_envoy_config_passes_envoy_validate(template: Path, tmp_path: Path) -> None:
    rendered = gateway.render_template(template, tmp_path / template.name,
                                       gateway.envoy_values(*gateway.free_ports(3)))
    # Validation configures the plugins: keys read from the environment need a value.
    ok, output = gateway.validate_envoy_config(rendered, gateway.validation_env(template))
    assert ok, output


def test_the_real_provider_config_keeps_its_keys_out_of_the_file() -> None:
    template = gateway.ENVOY_CONFIGS / "real-providers.yaml"
    keys = host_env_keys(template)
    assert {"OPENAI_API_KEY", "ANTHROPIC_API_KEY"} <= set(keys), keys
    text = template.read_text(encoding="utf-8")
    assert '"apiKeys"' not in text and "sk-" not in text
    assert text.count("UpstreamTlsContext") == text.count("type: LOGICAL_DNS") >= 4


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


def test_make_run_keeps_only_the_real_providers_whose_key_is_set(tmp_path: Path) -> None:
    import real_providers  # scripts/, on the path like aigw_gateway

    assert real_providers.template_for(tmp_path, {}) is None, "no key: llm-sim"
    found = real_providers.template_for(tmp_path, {"ANTHROPIC_API_KEY": "sk-ant-x",
                                                   "GEMINI_API_KEY": " "})
    assert found is not None
    template, providers = found
    assert providers == ["anthropic"], "a blank variable counts as unset"
    rendered = gateway.render_template(template, tmp_path / "rendered.yaml",
                                       gateway.envoy_values(*gateway.free_ports(3)))
    text = rendered.read_text(encoding="utf-8")
    assert '"claude-*"' in text and '"gpt-*"' not in text and "OPENAI_API_KEY\"" not in text
    assert "sk-ant-x" not in text, "keys stay in the environment"
    # Envoy configures ai-proxy with just that key set, and refuses it without.
    ok, output = gateway.validate_envoy_config(rendered, {"ANTHROPIC_API_KEY": "sk-ant-x"})
    assert ok, output


def test_azure_and_vertex_get_their_account_hosts_from_the_environment(tmp_path: Path) -> None:
    import real_providers

    env = {"AZURE_OPENAI_API_KEY": "az-key", "AZURE_OPENAI_RESOURCE": "myres",
           "VERTEX_ACCESS_TOKEN": "ya29.x", "VERTEX_PROJECT": "proj-1",
           "VERTEX_LOCATION": "europe-west4"}
    found = real_providers.template_for(tmp_path, env)
    assert found is not None
    template, providers = found
    assert providers == ["azure", "vertex"]
    rendered = gateway.render_template(template, tmp_path / "rendered.yaml",
                                       gateway.envoy_values(*gateway.free_ports(3)))
    text = rendered.read_text(encoding="utf-8")
    assert "sni: myres.openai.azure.com" in text and '"authority": "myres.openai.azure.com"' in text
    assert "sni: europe-west4-aiplatform.googleapis.com" in text
    assert '"project": "proj-1"' in text and '"location": "europe-west4"' in text
    assert "example-resource" not in text and "example-project" not in text
    ok, output = gateway.validate_envoy_config(rendered, env)
    assert ok, output
    # A resource name that is not a DNS label (it would be written into the config) is refused.
    bad = {**env, "AZURE_OPENAI_RESOURCE": "x.evil.example/"}
    _, providers = real_providers.template_for(tmp_path, bad)
    assert providers == ["vertex"]
    ok, output = gateway.validate_envoy_config(rendered, {"ANTHROPIC_API_KEY": ""})
    assert not ok and "apiKeysFromEnv[0]" in output, output
