#!/usr/bin/env python3
"""Keep proxy-wasm behind the shared crate: plugins reach the host only through aigw-shared.

Fails (exit 1) when a package under plugins/ or examples/ declares `proxy-wasm` as a dependency of
any kind or target (renamed or not), or when a file there mentions the `proxy_wasm` crate path.
Also fails when a Rust file other than shared/src/higress_abi.rs opts out of the workspace's
`unsafe_code = "deny"` (the one audited module with `unsafe`: Higress host calls the SDK lacks).
Run by `make lint`; reads `cargo metadata --no-deps` (the declared dependencies, no network).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Plugin crates: the shipped ones and the worked examples, written against the same contract.
PLUGIN_DIRS = (REPO_ROOT / "plugins", REPO_ROOT / "examples")
FORBIDDEN_PACKAGE = "proxy-wasm"
FORBIDDEN_PATH = "proxy_wasm"
# The only file allowed to opt out of `unsafe_code = "deny"`.
UNSAFE_ALLOWED = REPO_ROOT / "shared" / "src" / "higress_abi.rs"
UNSAFE_OPT_OUT = ("allow(unsafe_code)", "expect(unsafe_code)", "warn(unsafe_code)")
RUST_ROOTS = ("shared", "plugins", "examples", "test-harness")


def declared_violations() -> list[str]:
    """Plugin packages that depend on proxy-wasm directly."""
    cargo = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    found = []
    for package in json.loads(cargo.stdout)["packages"]:
        manifest = Path(package["manifest_path"]).resolve()
        if not any(folder in manifest.parents for folder in PLUGIN_DIRS):
            continue
        for dep in package["dependencies"]:
            if dep["name"] == FORBIDDEN_PACKAGE:
                kind = dep.get("kind") or "normal"
                target = f" (target {dep['target']})" if dep.get("target") else ""
                found.append(
                    f"{manifest.relative_to(REPO_ROOT)}: {kind} dependency on "
                    f"{FORBIDDEN_PACKAGE}{target}; use aigw-shared instead"
                )
    return found


def source_violations() -> list[str]:
    """Lines under plugins/ and examples/ that mention the proxy_wasm crate."""
    found = []
    for path in sorted(p for folder in PLUGIN_DIRS for p in folder.rglob("*")):
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if FORBIDDEN_PATH in line:
                found.append(f"{path.relative_to(REPO_ROOT)}:{number}: mentions {FORBIDDEN_PATH}")
    return found


def unsafe_violations() -> list[str]:
    """Rust files, other than the audited Higress module, that allow `unsafe` code."""
    found = []
    for root in RUST_ROOTS:
        for path in sorted((REPO_ROOT / root).rglob("*.rs")):
            if path.resolve() == UNSAFE_ALLOWED or "target" in path.relative_to(REPO_ROOT).parts:
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            for number, line in enumerate(text.splitlines(), start=1):
                if any(opt in line.replace(" ", "") for opt in UNSAFE_OPT_OUT):
                    found.append(
                        f"{path.relative_to(REPO_ROOT)}:{number}: opts out of unsafe_code = "
                        f"deny (only {UNSAFE_ALLOWED.relative_to(REPO_ROOT)} may)"
                    )
    return found


def main() -> int:
    """Print every violation; exit 1 when there is one."""
    violations = declared_violations() + source_violations() + unsafe_violations()
    for violation in violations:
        print(f"check_deps: {violation}", file=sys.stderr)
    if violations:
        print(
            "check_deps: plugins must reach proxy-wasm only through aigw-shared (its Host trait "
            "and export_plugin!)",
            file=sys.stderr,
        )
        return 1
    print("check_deps: ok (no plugin or example depends on or mentions proxy_wasm directly)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
