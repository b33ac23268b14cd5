#!/usr/bin/env python3
"""Cargo runner for wasm32-wasip1 test binaries: runs one under wasmtime (the PyPI `wasmtime`).

Cargo calls a runner as `<runner> <path/to/test.wasm> <test args...>`; `make test-wasm32` sets
`CARGO_TARGET_WASM32_WASIP1_RUNNER` to this script run by the .venv's python. The guest gets:
  - argv: the .wasm path, then the test arguments unchanged (filters, --nocapture, --ignored, ...);
  - stdout and stderr of this process;
  - the workspace root preopened at its own absolute path, so the fixture paths the tests build
    from `env!("CARGO_MANIFEST_DIR")` (absolute host paths baked in at compile time, `..` included)
    resolve unchanged, and the current directory (cargo runs tests in the crate's) at `.`;
  - the environment variables the tests read: AIGW_* (e.g. AIGW_FUZZ_ROUNDS), RUST_* (RUST_BACKTRACE,
    RUST_TEST_*), NO_COLOR, TERM, plus CARGO_MANIFEST_DIR and CARGO_PKG_* that cargo sets;
and this script exits with the guest's exit code (WASI proc_exit). wasm32-wasip1 has no unwinding:
a failing test's panic aborts the whole binary (a trap, like an out-of-bounds access or a stack
overflow) before libtest prints the captured message, so a trap is printed with its wasm backtrace,
the binary is run once more with `--nocapture` to show the panic message, and the exit code is 101,
cargo's code for a failed test binary. (libtest itself ignores `#[should_panic]` tests there.)

Imports the guest declares that are neither WASI nor defined here (the proxy-wasm host functions
that `export_plugin!` pulls into a wasm32 build of a plugin crate) are defined as traps: the unit
tests run on the mock host and never call them; one that did would fail loudly.
"""

import os
import sys
from pathlib import Path

import wasmtime

# Workspace root: this file is <root>/scripts/wasm_test_runner.py.
WORKSPACE = Path(__file__).resolve().parent.parent
PASSED_ENV_PREFIXES = ("AIGW_", "RUST_", "CARGO_MANIFEST_DIR", "CARGO_PKG_")
PASSED_ENV_NAMES = ("NO_COLOR", "TERM")


def guest_env() -> list[tuple[str, str]]:
    return sorted(
        (k, v)
        for k, v in os.environ.items()
        if k.startswith(PASSED_ENV_PREFIXES) or k in PASSED_ENV_NAMES
    )


def run(engine: wasmtime.Engine, module: wasmtime.Module, args: list[str]) -> tuple[int, bool]:
    """Runs the guest's `_start` with argv `args`: (exit code, whether it trapped; 101 then)."""
    wasi = wasmtime.WasiConfig()
    wasi.argv = args
    wasi.env = [[k, v] for k, v in guest_env()]
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    root = str(WORKSPACE)
    wasi.preopen_dir(root, root)
    cwd = os.getcwd()
    # Not the crate directory (cargo's working directory for tests) at its own path as well: WASI
    # resolves an absolute path in the longest matching preopen and refuses `..` out of it, so
    # `<crate>/../../testdata` would fail there.
    if os.path.commonpath([cwd, root]) != root:
        wasi.preopen_dir(cwd, cwd)
    wasi.preopen_dir(cwd, ".")

    store = wasmtime.Store(engine)
    store.set_wasi(wasi)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    linker.define_unknown_imports_as_traps(module)
    instance = linker.instantiate(store, module)
    start = instance.exports(store).get("_start")
    if not isinstance(start, wasmtime.Func):
        print(f"{args[0]}: no _start export (not a WASI command)", file=sys.stderr)
        return 2, False
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        start(store)
    except wasmtime.ExitTrap as e:
        return e.code, False
    except (wasmtime.Trap, wasmtime.WasmtimeError) as e:
        sys.stdout.flush()
        print(f"wasm trap in {args[0]}: {e}", file=sys.stderr)
        return 101, True
    return 0, False


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(f"usage: {argv[0]} <test.wasm> [test args...]", file=sys.stderr)
        return 2
    wasm_path = argv[1]
    engine = wasmtime.Engine()
    module = wasmtime.Module.from_file(engine, wasm_path)
    args = [wasm_path, *argv[2:]]
    code, trapped = run(engine, module, args)
    if trapped and not {"--nocapture", "--no-capture", "--list"} & set(args):
        # wasm32-wasip1 has no unwinding: a failing assertion aborts the whole binary before libtest
        # prints the captured panic message. Run again uncaptured so the message reaches the log.
        print(
            f"\n{wasm_path} aborted (a panic aborts the whole test binary on wasm32);"
            " running it again with --nocapture to show the panic message:\n",
            file=sys.stderr,
        )
        sys.stderr.flush()
        run(engine, module, [*args, "--nocapture"])
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
