#!/usr/bin/env python3
"""Render every envoy-configs/*.yaml with free ports and check it with `envoy --mode validate`.

Needs the plugins built (`make build`): Envoy's validation loads every referenced .wasm file.
Exit status 0 only when every config is valid.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aigw_gateway as gateway  # noqa: E402


def main() -> int:
    """Validate each template; print one line per file, Envoy's output for failures."""
    templates = gateway.envoy_templates()
    if not templates:
        print(f"validate_configs: no *.yaml in {gateway.ENVOY_CONFIGS}", file=sys.stderr)
        return 1
    failed = 0
    with tempfile.TemporaryDirectory(prefix="aigw-validate-") as tmp:
        for template in templates:
            values = gateway.envoy_values(*gateway.free_ports(3))
            try:
                rendered = gateway.render_template(template, Path(tmp) / template.name, values)
                ok, output = gateway.validate_envoy_config(rendered,
                                                           gateway.validation_env(template))
            except gateway.GatewayError as err:
                ok, output = False, str(err)
            print(f"{'ok  ' if ok else 'FAIL'} envoy-configs/{template.name}")
            if not ok:
                failed += 1
                print(output.rstrip(), file=sys.stderr)
    print(f"{len(templates) - failed} valid, {failed} invalid")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
