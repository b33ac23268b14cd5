#!/usr/bin/env python3
"""Print a Markdown table of each built plugin's .wasm size: as built, gzip -9 (what an OCI layer
carries) and, when binaryen's `wasm-opt` is on PATH, after `wasm-opt -O3` and `-Oz`.

`make sizes` runs it after `make build`; the README's size table comes from it.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# The wasm features rustc's wasm32-wasip1 target emits by default; wasm-opt must accept them.
WASM_OPT_FEATURES = ["--enable-bulk-memory", "--enable-sign-ext", "--enable-mutable-globals",
                     "--enable-nontrapping-float-to-int", "--enable-multivalue",
                     "--enable-reference-types"]


def kib(size: int) -> str:
    return f"{size / 1024:,.0f} KiB"


def wasm_opt_size(wasm_opt: str, wasm: Path, level: str) -> int | None:
    """Size after `wasm-opt <level>`, or None when it fails (an unsupported feature)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / wasm.name
        done = subprocess.run([wasm_opt, level, *WASM_OPT_FEATURES, str(wasm), "-o", str(out)],
                              capture_output=True, timeout=600)
        return out.stat().st_size if done.returncode == 0 else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wasm-dir", type=Path, required=True)
    parser.add_argument("plugins", nargs="+")
    args = parser.parse_args(argv)
    wasm_opt = shutil.which("wasm-opt")
    header = ["plugin", "built", "gzip -9", "higress build"]
    if wasm_opt:
        header += ["wasm-opt -O3", "wasm-opt -Oz"]
    print("| " + " | ".join(header) + " |")
    print("|---" + "|---:" * (len(header) - 1) + "|")
    for plugin in args.plugins:
        name = plugin.replace("-", "_") + ".wasm"
        wasm = args.wasm_dir / name
        if not wasm.is_file():
            print(f"wasm_sizes: {wasm} not found (run `make build`)", file=sys.stderr)
            return 1
        data = wasm.read_bytes()
        higress = args.wasm_dir / "higress" / name
        row = [plugin, kib(len(data)), kib(len(gzip.compress(data, 9, mtime=0))),
               kib(higress.stat().st_size) if higress.is_file() else "-"]
        if wasm_opt:
            for level in ("-O3", "-Oz"):
                size = wasm_opt_size(wasm_opt, wasm, level)
                row.append(f"{kib(size)} ({size / len(data) - 1:+.0%})" if size else "fails")
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
