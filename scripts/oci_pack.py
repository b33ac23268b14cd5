#!/usr/bin/env python3
"""Pack each built plugin .wasm as an OCI image in an OCI image layout on disk, without Docker.

One layout per plugin under the output directory (default `<target>/oci/<plugin>/`), holding two
images tagged by version:

  <version>          the standard build (Envoy, Istio, Envoy Gateway, APISIX)
  <version>-higress  the Higress build (feature `aigw-shared/higress`), when it was built

Each image is the Wasm image spec's *compat* variant: an OCI image manifest whose one layer
(`application/vnd.oci.image.layer.v1.tar+gzip`) is a tar holding `plugin.wasm`, with the manifest
annotation `module.wasm.image/variant: compat`. Istio's and Envoy Gateway's image fetchers accept it
(they try it first), and so does Higress (its plugin images put `plugin.wasm` in the last
`tar+gzip` layer). The *oci* variant (custom media types) is left out: several registries refuse
custom layer media types, and every host above reads the compat one.

The output is reproducible: the tar and gzip headers carry no time, owner or host name, so the
same .wasm always gives the same digests (a rebuilt, unchanged plugin re-tags, it does not re-push).

Push with any OCI tool, e.g. `skopeo copy oci:<layout>:<tag> docker://<registry>/<name>:<tag>` or
`oras cp --from-oci-layout <layout>:<tag> <registry>/<name>:<tag>`.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

LAYOUT_VERSION = "1.0.0"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
VARIANT_ANNOTATION = "module.wasm.image/variant"
REF_NAME = "org.opencontainers.image.ref.name"
PLUGIN_FILE = "plugin.wasm"


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a manifest or index points at."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] | None = None

    def to_json(self) -> dict:
        out: dict = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(sorted(self.annotations.items()))
        return out


def canonical_json(value: dict) -> bytes:
    """The bytes written for a JSON blob: sorted keys, no spaces (stable digests)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_blob(layout: Path, data: bytes, media_type: str, annotations=None) -> Descriptor:
    """Store `data` under blobs/sha256/ and return its descriptor."""
    digest = sha256(data)
    path = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)
    return Descriptor(media_type, digest, len(data), annotations)


def plugin_tar(wasm: bytes) -> bytes:
    """A tar with one regular file, plugin.wasm, and no time, owner or mode noise."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(PLUGIN_FILE)
        info.size = len(wasm)
        info.mode = 0o644
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(wasm))
    return buf.getvalue()


def gzip_stable(data: bytes) -> bytes:
    """gzip with mtime 0 and no file name in the header."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def pack_image(layout: Path, plugin: str, version: str, wasm: bytes, tag: str) -> Descriptor:
    """Write one compat-variant image's blobs; return its manifest descriptor tagged `tag`."""
    tar = plugin_tar(wasm)
    layer = write_blob(
        layout,
        gzip_stable(tar),
        LAYER_MEDIA_TYPE,
        {"org.opencontainers.image.title": PLUGIN_FILE},
    )
    config = {
        "architecture": "wasm",
        "os": "wasip1",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha256(tar)]},
    }
    config_desc = write_blob(layout, canonical_json(config), CONFIG_MEDIA_TYPE)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config_desc.to_json(),
        "layers": [layer.to_json()],
        "annotations": {
            VARIANT_ANNOTATION: "compat",
            "org.opencontainers.image.title": plugin,
            "org.opencontainers.image.version": version,
            "org.opencontainers.image.description": f"{plugin} proxy-wasm plugin ({tag})",
            "org.opencontainers.image.licenses": "Apache-2.0",
        },
    }
    return write_blob(layout, canonical_json(manifest), MANIFEST_MEDIA_TYPE, {REF_NAME: tag})


def pack_plugin(out: Path, plugin: str, version: str, builds: list[tuple[str, Path]]) -> Path:
    """Write the layout of one plugin: an image per (tag, .wasm) pair, then index.json."""
    layout = out / plugin
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": LAYOUT_VERSION}))
    manifests = [
        pack_image(layout, plugin, version, wasm.read_bytes(), tag).to_json()
        for tag, wasm in builds
    ]
    index = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": manifests}
    (layout / "index.json").write_bytes(canonical_json(index))
    remove_unreferenced_blobs(layout)
    return layout


def referenced_digests(layout: Path) -> set[str]:
    """Every blob digest index.json reaches (manifests, their configs and layers)."""
    index = json.loads((layout / "index.json").read_bytes())
    found = set()
    for entry in index["manifests"]:
        found.add(entry["digest"])
        manifest = json.loads(blob_path(layout, entry["digest"]).read_bytes())
        found.add(manifest["config"]["digest"])
        found.update(layer["digest"] for layer in manifest["layers"])
    return found


def blob_path(layout: Path, digest: str) -> Path:
    algorithm, hex_digest = digest.split(":", 1)
    return layout / "blobs" / algorithm / hex_digest


def remove_unreferenced_blobs(layout: Path) -> None:
    """Drop blobs of earlier packs (an old .wasm) so the layout holds only what it tags."""
    keep = {d.split(":", 1)[1] for d in referenced_digests(layout)}
    for blob in (layout / "blobs" / "sha256").iterdir():
        if blob.name not in keep:
            blob.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wasm-dir", type=Path, required=True, help="where the .wasm files are")
    parser.add_argument("--out", type=Path, required=True, help="directory for the layouts")
    parser.add_argument("--version", required=True, help="image tag (the crate version)")
    parser.add_argument("plugins", nargs="+", help="plugin names, e.g. ai-proxy")
    args = parser.parse_args(argv)
    for plugin in args.plugins:
        file_name = plugin.replace("-", "_") + ".wasm"
        standard = args.wasm_dir / file_name
        if not standard.is_file():
            print(f"oci_pack: {standard} not found (run `make build`)", file=sys.stderr)
            return 1
        builds = [(args.version, standard)]
        higress = args.wasm_dir / "higress" / file_name
        if higress.is_file():
            builds.append((f"{args.version}-higress", higress))
        layout = pack_plugin(args.out, plugin, args.version, builds)
        tags = ", ".join(tag for tag, _ in builds)
        print(f"  {layout}  ({tags})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
