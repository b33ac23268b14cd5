"""`make run` against the real providers: envoy-configs/real-providers.yaml narrowed to the
providers whose key variable is set in the environment.

ai-proxy reads each provider's keys from its VM's environment (`apiKeysFromEnv`), and refuses a
config naming a variable that is not set; so the providers (and the model rules pointing at
them) whose variables are unset are taken out of the rendered template. Keys are never written
to a file: Envoy passes them from its environment into the VM (`host_env_keys`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import aigw_gateway as gateway

TEMPLATE = gateway.ENVOY_CONFIGS / "real-providers.yaml"

# Per-account values of providers without one public host: (variable, the placeholder the
# template uses for it). A provider is kept only when these are set too, and valid DNS labels.
ACCOUNT_VALUES = {
    "azure": [("AZURE_OPENAI_RESOURCE", "example-resource")],
    "vertex": [("VERTEX_PROJECT", "example-project"), ("VERTEX_LOCATION", "us-central1")],
}
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def _ai_proxy_block(lines: list[str]) -> tuple[int, int, int]:
    """(first, end, indent) of the JSON under ai-proxy's `value: |` in the template's lines."""
    start = next(i for i, line in enumerate(lines) if line.strip() == "name: ai-proxy")
    value = next(i for i in range(start, len(lines)) if lines[i].strip() == "value: |")
    indent = len(lines[value]) - len(lines[value].lstrip()) + 2
    end = value + 1
    while end < len(lines) and (not lines[end].strip()
                                or len(lines[end]) - len(lines[end].lstrip()) >= indent):
        end += 1
    return value + 1, end, indent


def key_variables(config: dict) -> dict[str, list[str]]:
    """Each provider's key variables."""
    return {p["name"]: p.get("apiKeysFromEnv", []) for p in config["providers"]}


def narrowed(text: str, environ: dict[str, str]) -> tuple[str, list[str]]:
    """The template with only the providers whose every key variable is set (non-empty), and
    their names; ([], ...) when none is."""
    lines = text.splitlines()
    first, end, indent = _ai_proxy_block(lines)
    config = json.loads("\n".join(lines[first:end]))
    def account_ok(name: str) -> bool:
        return all(DNS_LABEL.match(environ.get(v, "").strip())
                   for v, _ in ACCOUNT_VALUES.get(name, []))

    keep = [name for name, variables in key_variables(config).items()
            if variables and all(environ.get(v, "").strip() for v in variables) and account_ok(name)]
    config["providers"] = [p for p in config["providers"] if p["name"] in keep]
    config["models"] = [m for m in config["models"] if m["provider"] in keep]
    body = [" " * indent + line for line in json.dumps(config, indent=2).splitlines()]
    text = "\n".join(lines[:first] + body + lines[end:]) + "\n"
    for name in keep:
        for variable, placeholder in ACCOUNT_VALUES.get(name, []):
            text = text.replace(placeholder, environ[variable].strip())
    return text, keep


def template_for(workdir: Path, environ: dict[str, str] | None = None) -> tuple[Path, list[str]] | None:
    """A template for the providers whose keys are set, written to `workdir`; None when no key
    is set (then `make run` uses llm-sim)."""
    text, keep = narrowed(TEMPLATE.read_text(encoding="utf-8"),
                          dict(os.environ if environ is None else environ))
    if not keep:
        return None
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "real-providers.template.yaml"
    out.write_text(text, encoding="utf-8")
    return out, keep
