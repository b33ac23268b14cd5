"""`make oci` (scripts/oci_pack.py): every plugin packed as an OCI image layout, checked by hand
(digests, sizes, media types, the one `plugin.wasm` in the layer) and by real tools: skopeo reads
each layout and pushes it to a real registry (Debian's docker-registry, the CNCF distribution
server) on loopback, and the image read back from the registry the way Istio's and Envoy Gateway's
fetchers read a compat-variant image gives the very bytes of the built .wasm.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

import aigw_gateway as gateway

sys.path.insert(0, str(gateway.REPO_ROOT / "scripts"))
import oci_pack  # noqa: E402

PLUGINS = sorted(p.parent.name for p in (gateway.REPO_ROOT / "plugins").glob("*/Cargo.toml"))
VERSION = "0.0.0-test"


def wasm_of(plugin: str, higress: bool = False) -> Path:
    name = plugin.replace("-", "_") + ".wasm"
    return gateway.wasm_dir() / "higress" / name if higress else gateway.wasm_dir() / name


def tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is missing: `make deps` installs it (Debian package)"
    return found


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("oci")
    wasm_dir = gateway.wasm_dir()
    assert oci_pack.main(["--wasm-dir", str(wasm_dir), "--out", str(out), "--version", VERSION,
                          *PLUGINS]) == 0
    return out


def load_json(layout: Path, digest: str) -> dict:
    return json.loads(oci_pack.blob_path(layout, digest).read_bytes())


def layer_files(blob: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob)), mode="r:") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


@pytest.mark.parametrize("plugin", PLUGINS)
def test_each_layout_holds_a_compat_image_per_build_whose_layer_is_the_wasm(layouts: Path,
                                                                           plugin: str) -> None:
    layout = layouts / plugin
    assert json.loads((layout / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_bytes())
    assert index["mediaType"] == oci_pack.INDEX_MEDIA_TYPE
    tags = {m["annotations"][oci_pack.REF_NAME]: m for m in index["manifests"]}
    assert set(tags) == {VERSION, f"{VERSION}-higress"}
    for blob in (layout / "blobs" / "sha256").iterdir():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    for tag, entry in tags.items():
        manifest_bytes = oci_pack.blob_path(layout, entry["digest"]).read_bytes()
        assert len(manifest_bytes) == entry["size"]
        manifest = json.loads(manifest_bytes)
        assert manifest["mediaType"] == entry["mediaType"] == oci_pack.MANIFEST_MEDIA_TYPE
        assert manifest["annotations"]["module.wasm.image/variant"] == "compat"
        assert manifest["config"]["mediaType"] == oci_pack.CONFIG_MEDIA_TYPE
        [layer] = manifest["layers"]
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
        blob = oci_pack.blob_path(layout, layer["digest"]).read_bytes()
        assert len(blob) == layer["size"]
        files = layer_files(blob)
        assert list(files) == ["plugin.wasm"]
        assert files["plugin.wasm"] == wasm_of(plugin, tag.endswith("-higress")).read_bytes()
        config = load_json(layout, manifest["config"]["digest"])
        assert config["rootfs"]["diff_ids"] == [oci_pack.sha256(gzip.decompress(blob))]


def test_packing_again_gives_the_same_digests(layouts: Path, tmp_path: Path) -> None:
    plugin = PLUGINS[0]
    assert oci_pack.main(["--wasm-dir", str(gateway.wasm_dir()), "--out", str(tmp_path),
                          "--version", VERSION, plugin]) == 0
    first = json.loads((layouts / plugin / "index.json").read_bytes())
    again = json.loads((tmp_path / plugin / "index.json").read_bytes())
    assert again == first


def test_repacking_a_changed_wasm_leaves_no_stale_blobs(tmp_path: Path) -> None:
    wasm_dir = tmp_path / "wasm"
    wasm_dir.mkdir()
    fake = wasm_dir / "ai_proxy.wasm"
    out = tmp_path / "oci"
    fake.write_bytes(b"\0asm\1\0\0\0first")
    assert oci_pack.main(["--wasm-dir", str(wasm_dir), "--out", str(out), "--version", "1",
                          "ai-proxy"]) == 0
    fake.write_bytes(b"\0asm\1\0\0\0second")
    assert oci_pack.main(["--wasm-dir", str(wasm_dir), "--out", str(out), "--version", "1",
                          "ai-proxy"]) == 0
    layout = out / "ai-proxy"
    on_disk = {f"sha256:{p.name}" for p in (layout / "blobs" / "sha256").iterdir()}
    assert on_disk == oci_pack.referenced_digests(layout)
    assert len(on_disk) == 3  # one manifest, its config, its layer


def test_a_missing_wasm_is_an_error_not_an_empty_image(tmp_path: Path) -> None:
    assert oci_pack.main(["--wasm-dir", str(tmp_path), "--out", str(tmp_path / "oci"),
                          "--version", "1", "ai-proxy"]) == 1
    assert not (tmp_path / "oci").exists()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real OCI registry (distribution) on loopback, storage in a temporary directory."""
    binary = tool("docker-registry")
    work = tmp_path_factory.mktemp("registry")
    port = gateway.free_ports(1)[0]
    config = work / "config.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {work / 'data'}\n"
        f"http:\n  addr: {gateway.LOOPBACK}:{port}\n"
        "log:\n  level: warn\n"
    )
    proc = gateway.Process("docker-registry", [binary, "serve", config], work / "registry.log")
    url = f"http://{gateway.LOOPBACK}:{port}"
    try:
        gateway.wait_until("the registry answers", lambda: gateway.http_get(f"{url}/v2/")[0] == 200,
                           proc, timeout_s=20)
        yield f"{gateway.LOOPBACK}:{port}"
    finally:
        proc.stop()


def registry_get(url: str, accept: str | None = None) -> tuple[bytes, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with opener.open(request, timeout=10) as resp:
        return resp.read(), resp.headers.get("Docker-Content-Digest", "")


def test_skopeo_pushes_every_image_and_the_registry_serves_the_wasm(layouts: Path,
                                                                   registry: str) -> None:
    skopeo = tool("skopeo")
    for plugin in PLUGINS:
        for tag, higress in ((VERSION, False), (f"{VERSION}-higress", True)):
            subprocess.run(
                [skopeo, "copy", "--quiet", "--dest-tls-verify=false",
                 f"oci:{layouts / plugin}:{tag}", f"docker://{registry}/aigw/{plugin}:{tag}"],
                check=True, capture_output=True, timeout=120,
            )
            # Read it back the way a host's image fetcher does: manifest by tag, then the layer.
            manifest_bytes, digest = registry_get(
                f"http://{registry}/v2/aigw/{plugin}/manifests/{tag}", oci_pack.MANIFEST_MEDIA_TYPE)
            index = json.loads((layouts / plugin / "index.json").read_bytes())
            [local] = [m for m in index["manifests"] if m["annotations"][oci_pack.REF_NAME] == tag]
            assert digest == local["digest"] == oci_pack.sha256(manifest_bytes)
            manifest = json.loads(manifest_bytes)
            [layer] = manifest["layers"]
            blob, _ = registry_get(f"http://{registry}/v2/aigw/{plugin}/blobs/{layer['digest']}")
            assert layer_files(blob)["plugin.wasm"] == wasm_of(plugin, higress).read_bytes()
