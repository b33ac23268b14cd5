"""Every plugin config in the repository is valid against its plugin's JSON Schema.

The schemas (`plugins/<name>/config.schema.json`) are generated from the plugins' config types by
a native test per plugin (`make schemas` rewrites them); here every example is checked against
them: the wasm filter configurations in `envoy-configs/*.yaml`, the `WasmPlugin` resources in
`higress-configs/` (`defaultConfig`, and each `matchRules` entry merged over it as the plugin sees
it), the route plugin configs in `apisix-configs/`, the wasm configs of the Envoy Gateway and Istio
examples (`envoy-gateway-configs/`, `istio-configs/`), and the snippets in the READMEs (Envoy and
Higress YAML blocks; JSON blocks marked with an `<!-- schema: <plugin> -->` line above them).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import pytest
import yaml

import aigw_gateway as gateway

REPO = gateway.REPO_ROOT
PLUGINS = sorted(p.parent.name for p in (REPO / "plugins").glob("*/Cargo.toml"))
WASM_FILTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
RULE_MATCH_KEYS = ("_match_route_", "_match_domain_", "_match_service_", "_match_route_prefix_")
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>yaml|json)\s*$")
SCHEMA_MARK = re.compile(r"^\s*<!--\s*schema:\s*(?P<plugin>[a-z0-9-]+)\s*-->\s*$")


def schema_path(plugin: str) -> Path:
    return REPO / "plugins" / plugin / "config.schema.json"


SCHEMAS = {p: json.loads(schema_path(p).read_text()) for p in PLUGINS if schema_path(p).is_file()}


@dataclass
class Example:
    """One plugin configuration found somewhere in the repository."""

    where: str
    plugin: str
    config: Any


def envoy_examples(doc: Any, where: str) -> Iterator[Example]:
    """The configuration of every wasm HTTP filter in an Envoy config (or fragment), by root_id."""
    if isinstance(doc, dict):
        config = doc.get("config")
        if doc.get("@type") == WASM_FILTER_TYPE and isinstance(config, dict):
            plugin = config.get("root_id") or config.get("name")
            value = (config.get("configuration") or {}).get("value")
            if plugin in PLUGINS and isinstance(value, str):
                yield Example(f"{where} ({plugin})", plugin, json.loads(value))
        for item in doc.values():
            yield from envoy_examples(item, where)
    elif isinstance(doc, list):
        for item in doc:
            yield from envoy_examples(item, where)


def merged_rule(default: dict, rule: dict) -> dict:
    """A Higress rule as the plugin checks it: its keys (matchers removed) over the top level."""
    merged = copy.deepcopy(default)
    merged.update({k: v for k, v in rule.items() if k not in RULE_MATCH_KEYS})
    return merged


def higress_examples(doc: Any, where: str) -> Iterator[Example]:
    """`defaultConfig` and every `matchRules[].config` of a Higress WasmPlugin resource."""
    if not isinstance(doc, dict) or doc.get("kind") != "WasmPlugin":
        return
    spec = doc.get("spec") or {}
    plugin = spec.get("url", "").rsplit("/", 1)[-1].split(":", 1)[0]
    assert plugin in PLUGINS, f"{where}: WasmPlugin url names no plugin of this repository"
    default = spec.get("defaultConfig") or {}
    yield Example(f"{where} defaultConfig", plugin, default)
    for i, rule in enumerate(spec.get("matchRules") or []):
        yield Example(f"{where} matchRules[{i}]", plugin, merged_rule(default, rule.get("config") or {}))


def apisix_examples(doc: Any, where: str) -> Iterator[Example]:
    """`plugins.<name>.conf` of every route in an APISIX standalone config."""
    for route in (doc or {}).get("routes", []) if isinstance(doc, dict) else []:
        for name, entry in (route.get("plugins") or {}).items():
            if name in PLUGINS:
                yield Example(f"{where} route {route.get('id')} ({name})", name, entry.get("conf"))


def kubernetes_examples(doc: Any, where: str) -> Iterator[Example]:
    """Envoy Gateway EnvoyExtensionPolicy wasm configs; Istio EnvoyFilter wasm filter configs."""
    if not isinstance(doc, dict):
        return
    if doc.get("kind") == "EnvoyExtensionPolicy":
        for entry in doc["spec"].get("wasm", []):
            yield Example(f"{where} wasm {entry.get('name')}", entry.get("rootID"), entry.get("config"))
    elif doc.get("kind") == "EnvoyFilter":
        yield from envoy_examples(doc, where)


def readme_blocks(path: Path) -> Iterator[tuple[int, str, str, str | None]]:
    """(line, language, text, marked plugin) of every fenced yaml/json block in a Markdown file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        mark = SCHEMA_MARK.match(lines[i - 1]) if i > 0 else None
        indent = len(fence["indent"])
        start, i = i + 1, i + 1
        while i < len(lines) and lines[i].strip() != "```":
            i += 1
        text = "\n".join(line[indent:] for line in lines[start:i])
        yield start, fence["lang"], text, mark["plugin"] if mark else None
        i += 1


def readme_examples(path: Path) -> Iterator[Example]:
    where_base = path.relative_to(REPO)
    for line, lang, text, marked in readme_blocks(path):
        where = f"{where_base}:{line}"
        if marked:
            assert marked in PLUGINS, f"{where}: <!-- schema: {marked} --> names no plugin"
            doc = json.loads(text) if lang == "json" else yaml.safe_load(text)
            yield Example(where, marked, doc)
        elif lang == "yaml" and ("kind: WasmPlugin" in text or WASM_FILTER_TYPE in text):
            try:
                docs = list(yaml.safe_load_all(text))
            except yaml.YAMLError:
                # An Envoy fragment with `...` elisions: read its filters' configurations as text.
                yield from fragment_examples(text, where)
                continue
            for doc in docs:
                yield from higress_examples(doc, where)
                yield from envoy_examples(doc, where)


def fragment_examples(text: str, where: str) -> Iterator[Example]:
    """The `value: |` JSON under each `root_id:` of an Envoy YAML fragment that is not whole YAML."""
    lines = text.splitlines()
    plugin = None
    for i, line in enumerate(lines):
        found = re.match(r"^\s*root_id:\s*([a-z0-9-]+)", line)
        if found:
            plugin = found[1]
        block = re.match(r"^(\s*)value: \|\s*$", line)
        if block and plugin in PLUGINS:
            indent = len(block[1])
            body = []
            for following in lines[i + 1:]:
                if following.strip() and len(following) - len(following.lstrip()) <= indent:
                    break
                body.append(following)
            yield Example(f"{where} ({plugin})", plugin, json.loads("\n".join(body)))


def all_examples() -> list[Example]:
    found: list[Example] = []
    for template in gateway.envoy_templates():
        rendered = gateway.render(template.read_text(encoding="utf-8"), gateway.envoy_values(1, 2, 3))
        found += envoy_examples(yaml.safe_load(rendered), f"envoy-configs/{template.name}")
    for path in sorted((REPO / "higress-configs").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            found += higress_examples(doc, str(path.relative_to(REPO)))
    for path in sorted((REPO / "apisix-configs").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            found += apisix_examples(doc, str(path.relative_to(REPO)))
    for path in sorted([*REPO.glob("envoy-gateway-configs/*.yaml"), *REPO.glob("istio-configs/*.yaml")]):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            found += kubernetes_examples(doc, str(path.relative_to(REPO)))
    readmes = [REPO / "README.md", *sorted(REPO.glob("*-configs/README.md")),
               *sorted((REPO / "plugins").glob("*/README.md"))]
    for path in readmes:
        found += readme_examples(path)
    return found


EXAMPLES = all_examples()


def errors(plugin: str, config: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(SCHEMAS[plugin])
    return [f"{'.'.join(map(str, e.absolute_path)) or '<top>'}: {e.message}"
            for e in validator.iter_errors(config)]


@pytest.mark.parametrize("plugin", PLUGINS)
def test_every_plugin_commits_a_json_schema_of_its_config(plugin: str) -> None:
    assert plugin in SCHEMAS, f"{schema_path(plugin)} is missing: derive schemars::JsonSchema on " \
                              "the config types and run `make schemas`"
    jsonschema.Draft202012Validator.check_schema(SCHEMAS[plugin])


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.where for e in EXAMPLES])
def test_example_config_is_valid_against_its_plugins_schema(example: Example) -> None:
    if example.plugin not in SCHEMAS:
        pytest.fail(f"{example.plugin} has no config.schema.json")
    assert errors(example.plugin, example.config) == []


@pytest.mark.parametrize("plugin", sorted(SCHEMAS))
def test_every_plugin_has_examples_in_envoy_and_higress_configs_and_its_readme(plugin: str) -> None:
    places = {e.where.split(":")[0].split(" ")[0] for e in EXAMPLES if e.plugin == plugin}
    assert f"envoy-configs/{plugin}.yaml" in places, places
    assert f"higress-configs/{plugin}.yaml" in places, places
    assert f"plugins/{plugin}/README.md" in places, places


@pytest.mark.parametrize("plugin", sorted(SCHEMAS))
def test_the_schema_refuses_an_unknown_field_at_the_top_and_inside(plugin: str) -> None:
    example = next(e for e in EXAMPLES if e.plugin == plugin and e.where.startswith("envoy-configs"))
    config = copy.deepcopy(example.config)
    config["bogusField"] = 1
    assert any("bogusField" in e for e in errors(plugin, config))
    # And inside the first nested object whose schema is closed (not a map).
    for key, value in example.config.items():
        if isinstance(value, dict) and resolve(plugin, key).get("additionalProperties") is False:
            config = copy.deepcopy(example.config)
            config[key]["bogusField"] = 1
            assert any(e.startswith(key) and "bogusField" in e for e in errors(plugin, config))
            break


def resolve(plugin: str, key: str) -> dict:
    """The schema of top-level property `key`, following one `$ref` into `$defs`."""
    schema = SCHEMAS[plugin]["properties"].get(key, {})
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        return SCHEMAS[plugin]["$defs"][ref.removeprefix("#/$defs/")]
    return schema


def test_a_higress_rule_without_a_matcher_is_refused() -> None:
    plugin = sorted(SCHEMAS)[0]
    assert errors(plugin, {"_rules_": [{"maxBodyBytes": 1}]}) != []
