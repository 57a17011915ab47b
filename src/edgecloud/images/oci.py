"""Importing an application image into a rootfs directory: OCI layouts and `docker save`.

`import_oci(source, dest)` reads one of:

- an OCI image layout directory (``oci-layout``, ``index.json``, ``blobs/sha256/...``);
- a tarball of one (``skopeo copy ... oci-archive:``, ``docker save`` of Docker 25 and
  later, which writes an OCI layout too) — plain, gzip, bzip2 or xz;
- an older ``docker save`` tarball (``manifest.json``, ``<id>.json``, ``<id>/layer.tar``).

It picks one image (by `ref`, else the only one; in a multi-platform index the
linux/amd64 one), checks every blob it reads against its digest before using it (an OCI
blob against its descriptor's digest and size; in a ``docker save`` tarball the config
against its file name and each layer against the config's ``rootfs.diff_ids``), refuses
the image on a mismatch, and applies the layers in order (see oci_layers for how safely).

`dest` must not exist yet (or be empty): the tree is built next to it and renamed into
place at the end, so a failed import leaves nothing behind. Nothing else is written: the
returned `OciImage` carries the image's run settings (its `summary()` is what
``edgecloud image import-oci`` stores as ``oci.json`` next to the rootfs).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from edgecloud.images.oci_layers import LayerError, LayerTree, clean_name, tree_size

INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
PLATFORM = ("linux", "amd64")
MAX_JSON = 64 * 2**20
CHUNK = 1 << 20
_DIGEST = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$")
_ZSTD = b"\x28\xb5\x2f\xfd"


class OciError(ValueError):
    """The image cannot be imported; the message says why, for a person."""


@dataclass(frozen=True)
class OciImage:
    """An imported image: where its rootfs is and how to run it."""

    rootfs: Path
    entrypoint: list[str]
    cmd: list[str]
    env: list[str]
    workdir: str
    digest: str  # the manifest's digest (a `docker save` image: its config's, the image id)
    size_mb: int

    def argv(self) -> list[str]:
        """Return the command a container runs: the entrypoint followed by cmd."""
        return [*self.entrypoint, *self.cmd]

    def summary(self) -> dict[str, Any]:
        """Return the fields as JSON-ready data."""
        return {**asdict(self), "rootfs": str(self.rootfs)}


# -- where blobs come from -----------------------------------------------------------------


class _Source:
    """Files of an image source, by their path relative to the layout's top."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tar: tarfile.TarFile | None = None
        self.members: dict[str, tarfile.TarInfo] = {}
        if path.is_dir():
            return
        try:
            self.tar = tarfile.open(path, "r:*")  # noqa: SIM115 (closed by close())
            for member in self.tar.getmembers():
                with contextlib.suppress(LayerError):
                    if member.isreg():
                        self.members[clean_name(member.name)] = member
        except (OSError, tarfile.TarError) as exc:
            raise OciError(f"{path}: neither an OCI layout directory nor a tarball: {exc}") from exc

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()

    def has(self, name: str) -> bool:
        if self.tar is not None:
            return name in self.members
        return (self.path / name).is_file()

    def open(self, name: str) -> IO[bytes]:
        try:
            name = clean_name(name)
        except LayerError as exc:
            raise OciError(f"{self.path}: bad file name in the image: {exc}") from exc
        if self.tar is None:
            try:
                return (self.path / name).open("rb")
            except OSError as exc:
                raise OciError(f"{self.path}: cannot read {name}: {exc.strerror}") from exc
        member = self.members.get(name)
        found = self.tar.extractfile(member) if member is not None else None
        if found is None:
            raise OciError(f"{self.path}: {name} is missing from the archive")
        return found

    def read(self, name: str) -> bytes:
        with self.open(name) as file:
            data = file.read(MAX_JSON + 1)
        if len(data) > MAX_JSON:
            raise OciError(f"{name}: larger than {MAX_JSON // 2**20} MiB")
        return data


def _hash(file: IO[bytes], algorithm: str) -> tuple[str, int]:
    digest = hashlib.new(algorithm)
    size = 0
    while chunk := file.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return f"{algorithm}:{digest.hexdigest()}", size


def _blob_name(digest: str) -> str:
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise OciError(f"unsupported or malformed digest {str(digest)[:80]!r}")
    algorithm, _, hexdigest = digest.partition(":")
    return f"blobs/{algorithm}/{hexdigest}"


def _check(source: _Source, name: str, digest: str, size: int | None = None) -> None:
    """Refuse the image unless the file's content has `digest` (and `size` if given)."""
    with source.open(name) as file:
        found, length = _hash(file, digest.partition(":")[0])
    if found != digest:
        raise OciError(f"{name}: content does not match its digest {digest} (it is {found})")
    if size is not None and length != size:
        raise OciError(f"{name}: {length} bytes, its descriptor says {size}")


def _json(source: _Source, name: str, digest: str | None = None) -> Any:
    data = source.read(name)
    if digest is not None:
        found, _ = _hash(io.BytesIO(data), digest.partition(":")[0])
        if found != digest:
            raise OciError(f"{name}: content does not match its digest {digest} (it is {found})")
    try:
        return json.loads(data)
    except ValueError as exc:
        raise OciError(f"{name}: not valid JSON: {exc}") from exc


def _blob_json(source: _Source, descriptor: Any) -> dict[str, Any]:
    if not isinstance(descriptor, dict):
        raise OciError("a descriptor is not a JSON object")
    digest = descriptor.get("digest", "")
    data = _json(source, _blob_name(digest), digest)
    if not isinstance(data, dict):
        raise OciError(f"blob {digest} is not a JSON object")
    return data


# -- choosing the image ----------------------------------------------------------------------


def _names(descriptor: dict[str, Any]) -> list[str]:
    """Return the names a descriptor answers to ("app:1" too for docker.io/library/app:1)."""
    notes = descriptor.get("annotations") or {}
    names = [str(notes[key]) for key in (REF_NAME, CONTAINERD_NAME) if key in notes]
    for prefix in ("docker.io/library/", "docker.io/"):
        names += [n.removeprefix(prefix) for n in names if n.startswith(prefix)]
    return names


def _pick(descriptors: list[Any], ref: str | None, where: str) -> dict[str, Any]:
    """Return the descriptor named `ref`, else the only one."""
    found = [d for d in descriptors if isinstance(d, dict)]
    if ref is not None:
        named = [d for d in found if ref in _names(d)]
        if not named:
            known = sorted({name for d in found for name in _names(d)})
            raise OciError(f"{where}: no image named {ref!r} (there are: {known or 'no names'})")
        found = named
    if len(found) > 1 and all("platform" in d for d in found):
        return _platform(found, where)
    if len(found) != 1:
        known = sorted({name for d in found for name in _names(d)})
        raise OciError(f"{where} holds {len(found)} images: choose one with ref ({known})")
    return found[0]


def _platform(descriptors: list[Any], where: str) -> dict[str, Any]:
    """Return the linux/amd64 manifest of an index (or its only manifest)."""
    found = [d for d in descriptors if isinstance(d, dict)]
    if len(found) == 1:
        return found[0]
    for descriptor in found:
        platform = descriptor.get("platform") or {}
        if (platform.get("os"), platform.get("architecture")) == PLATFORM:
            return descriptor
    raise OciError(f"{where}: no linux/amd64 image among {len(found)}")


def _oci_manifest(source: _Source, ref: str | None) -> tuple[str, dict[str, Any]]:
    """Return (digest, manifest) of the chosen image of an OCI layout."""
    index = _json(source, "index.json")
    if not isinstance(index, dict):
        raise OciError("index.json is not a JSON object")
    descriptor = _pick(index.get("manifests") or [], ref, "index.json")
    for _ in range(4):  # an index may point at an index (a multi-platform image)
        if descriptor.get("mediaType") not in INDEX_TYPES:
            break
        nested = _blob_json(source, descriptor)
        descriptor = _platform(nested.get("manifests") or [], f"index {descriptor['digest']}")
    manifest = _blob_json(source, descriptor)
    if manifest.get("mediaType") in INDEX_TYPES or "layers" not in manifest:
        raise OciError(f"{descriptor.get('digest')}: not an image manifest")
    return str(descriptor["digest"]), manifest


def _layers_of_oci(
    source: _Source, manifest: dict[str, Any]
) -> tuple[dict[str, Any], list[tuple[str, str, int | None]]]:
    """Return the config and the layers as (file name, digest, size)."""
    config = _blob_json(source, manifest.get("config"))
    layers = []
    for layer in manifest.get("layers") or []:
        if not isinstance(layer, dict):
            raise OciError("a layer descriptor is not a JSON object")
        digest = str(layer.get("digest", ""))
        size = layer.get("size")
        layers.append((_blob_name(digest), digest, size if isinstance(size, int) else None))
    return config, layers


def _docker_manifest(
    source: _Source, ref: str | None
) -> tuple[str, dict[str, Any], list[tuple[str, str, int | None]]]:
    """Return (image id, config, layers) of the chosen image of a `docker save` tarball."""
    entries = _json(source, "manifest.json")
    if not isinstance(entries, list):
        raise OciError("manifest.json is not a list")
    found = [e for e in entries if isinstance(e, dict)]
    if ref is not None:
        found = [e for e in found if ref in (e.get("RepoTags") or [])]
    if len(found) != 1:
        dicts = [e for e in entries if isinstance(e, dict)]
        tags = sorted(str(tag) for e in dicts for tag in e.get("RepoTags") or [])
        what = f"no image tagged {ref!r}" if ref is not None else f"{len(found)} images"
        raise OciError(f"manifest.json: {what}; choose one with ref (tags: {tags})")
    entry = found[0]
    config_name = str(entry.get("Config", ""))
    hexdigest = config_name.removeprefix("blobs/sha256/").removesuffix(".json")
    if not re.fullmatch(r"[0-9a-f]{64}", hexdigest):
        raise OciError(f"manifest.json: config {config_name!r} is not named by its digest")
    digest = f"sha256:{hexdigest}"
    config = _json(source, config_name, digest)
    if not isinstance(config, dict):
        raise OciError(f"{config_name} is not a JSON object")
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    names = [str(name) for name in entry.get("Layers") or []]
    if len(diff_ids) != len(names):
        raise OciError(f"{config_name}: {len(diff_ids)} diff_ids for {len(names)} layers")
    return digest, config, [(n, str(d), None) for n, d in zip(names, diff_ids, strict=True)]


# -- import ---------------------------------------------------------------------------------


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise OciError(f"image config: {what} is not a list of strings")
    return value


@contextlib.contextmanager
def _building(dest: Path) -> Iterator[Path]:
    """Yield a fresh directory beside `dest`; rename it to `dest` when the block succeeds."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise OciError(f"{dest} exists already: remove it or import elsewhere")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o755)
    try:
        yield work
        if dest.exists():
            dest.rmdir()
        work.rename(dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _apply(source: _Source, tree: LayerTree, name: str) -> None:
    with source.open(name) as layer:
        if layer.read(4) == _ZSTD:
            raise OciError(f"{name}: zstd-compressed layers are not supported")
    with source.open(name) as layer:
        try:
            tree.apply(layer)
        except LayerError as exc:
            raise OciError(f"{name}: {exc}") from exc


def _run_settings(config: dict[str, Any]) -> dict[str, Any]:
    run = config.get("config") or {}
    if not isinstance(run, dict):
        raise OciError("image config: 'config' is not an object")
    workdir = run.get("WorkingDir") or "/"
    if not isinstance(workdir, str) or not workdir.startswith("/"):
        raise OciError(f"image config: WorkingDir {workdir!r} is not an absolute path")
    return {
        "entrypoint": _strings(run.get("Entrypoint"), "Entrypoint"),
        "cmd": _strings(run.get("Cmd"), "Cmd"),
        "env": _strings(run.get("Env"), "Env"),
        "workdir": workdir,
    }


def import_oci(source: Path, dest: Path, *, ref: str | None = None) -> OciImage:
    """Import the image at `source` into the new directory `dest`; return what it runs."""
    if not source.exists():
        raise OciError(f"{source}: no such file or directory")
    images = _Source(source)
    try:
        if images.has("index.json"):
            digest, manifest = _oci_manifest(images, ref)
            config, layers = _layers_of_oci(images, manifest)
        elif images.has("manifest.json"):
            digest, config, layers = _docker_manifest(images, ref)
        else:
            raise OciError(f"{source}: no index.json (OCI layout) or manifest.json (docker save)")
        settings = _run_settings(config)
        for name, layer_digest, size in layers:
            _check(images, name, layer_digest, size)
        with _building(dest) as work:
            tree = LayerTree(work)
            for name, _, _ in layers:
                _apply(images, tree, name)
            tree.finish()
            size_mb = max(1, math.ceil(tree_size(work) / 2**20))
    finally:
        images.close()
    return OciImage(rootfs=dest, digest=digest, size_mb=size_mb, **settings)
