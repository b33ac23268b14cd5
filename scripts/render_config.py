#!/usr/bin/env python3
"""Render an envoy-configs/ template: free loopback ports and the built .wasm directory filled in.

Usage: scripts/render_config.py envoy-configs/full-chain.yaml OUT.yaml [--upstream-port N]
       [--listen-port N] [--admin-port N]
Ports not given are picked free (bind to port 0, then re-checked). Prints the values used as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aigw_gateway as gateway  # noqa: E402


def main() -> int:
    """Parse the command line, render, print the placeholder values."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--upstream-port", type=int)
    parser.add_argument("--listen-port", type=int)
    parser.add_argument("--admin-port", type=int)
    args = parser.parse_args()
    picked = iter(gateway.free_ports(3))
    values = gateway.envoy_values(
        upstream_port=args.upstream_port or next(picked),
        listen_port=args.listen_port or next(picked),
        admin_port=args.admin_port or next(picked),
    )
    try:
        gateway.render_template(args.template, args.out, values)
    except (gateway.GatewayError, OSError) as err:
        print(f"render_config: {err}", file=sys.stderr)
        return 1
    print(json.dumps(values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
