"""Importing OCI layouts, oci-archives and `docker save` tarballs into a rootfs."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from edgecloud.images.oci import OciError, import_oci
from tests.unit.test_cli_context import FakeFrontEnd, owned, run

pytestmark = pytest.mark.unit

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
Entry = tuple[str, str, Any]  # (kind, name, data or link target)


def tar_bytes(entries: Iterable[Entry], *, gz: bool = False) -> bytes:
    """Return a tar archive of ("dir"|"file"|"exec"|"symlink"|"hardlink"|"fifo", name, x)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for kind, name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            info.uid = info.gid = 0
            payload = None
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, data or 0o755
            elif kind in ("file", "exec"):
                payload = data.encode() if isinstance(data, str) else data
                info.size, info.mode = len(payload), 0o755 if kind == "exec" else 0o644
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, data
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, data
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            archive.addfile(info, io.BytesIO(payload) if payload is not None else None)
    raw = out.getvalue()
    return gzip.compress(raw, mtime=0) if gz else raw


def add_blob(layout: Path, data: bytes, media_type: str) -> dict[str, Any]:
    """Store a blob in the layout; return its descriptor."""
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def image_manifest(layout: Path, layers: list[bytes], config: dict[str, Any]) -> dict[str, Any]:
    """Store config, layers and manifest blobs; return the manifest's descriptor."""
    cfg = {"architecture": "amd64", "os": "linux", "config": config, "rootfs": {}}
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": add_blob(
            layout, json.dumps(cfg).encode(), "application/vnd.oci.image.config.v1+json"
        ),
        "layers": [
            add_blob(layout, layer, "application/vnd.oci.image.layer.v1.tar+gzip")
            for layer in layers
        ],
    }
    return add_blob(layout, json.dumps(manifest).encode(), MANIFEST)


def write_index(layout: Path, descriptors: list[dict[str, Any]]) -> None:
    """Write oci-layout and index.json."""
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": descriptors}
    (layout / "index.json").write_text(json.dumps(index))


def layout_of(
    layout: Path, layers: list[bytes], config: dict[str, Any] | None = None, ref: str = "latest"
) -> str:
    """Write a one-image OCI layout; return the manifest digest."""
    descriptor = image_manifest(layout, layers, config or {"Cmd": ["/bin/sh"]})
    descriptor["annotations"] = {"org.opencontainers.image.ref.name": ref}
    write_index(layout, [descriptor])
    return str(descriptor["digest"])


def tar_dir(directory: Path, target: Path, mode: str = "w") -> Path:
    """Tar a directory's content (names relative to it)."""
    with tarfile.open(target, mode) as archive:
        for entry in sorted(directory.iterdir()):
            archive.add(entry, arcname=entry.name)
    return target


LOWER = [
    ("dir", "bin", None),
    ("exec", "bin/tool", "v1"),
    ("hardlink", "bin/tool-hard", "bin/tool"),
    ("symlink", "tool-link", "bin/tool"),
    ("dir", "etc", None),
    ("file", "etc/conf", "a"),
    ("file", "etc/keep", "k"),
    ("dir", "data", 0o750),
    ("file", "data/old1", "1"),
    ("dir", "data/sub", None),
    ("file", "data/sub/old2", "2"),
    ("file", "gone.txt", "bye"),
    ("fifo", "pipe", None),
]
UPPER = [
    ("exec", "bin/tool", "v2"),
    ("file", ".wh.gone.txt", ""),
    ("file", "etc/.wh.keep", ""),
    ("file", "data/new", "n"),  # the same layer's entries survive its opaque marker
    ("file", "data/.wh..wh..opq", ""),
    ("dir", "app", None),
    ("exec", "app/run.sh", "#!/bin/sh\necho hi\n"),
]


def test_layers_apply_in_order_with_whiteouts_links_and_modes(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    config = {
        "Entrypoint": ["/app/run.sh"],
        "Cmd": ["--port", "8080"],
        "Env": ["PATH=/usr/bin:/bin", "GREETING=hello world"],
        "WorkingDir": "/app",
    }
    digest = layout_of(layout, [tar_bytes(LOWER, gz=True), tar_bytes(UPPER)], config)
    image = import_oci(layout, tmp_path / "rootfs")
    root = image.rootfs
    assert root == tmp_path / "rootfs"
    assert (image.entrypoint, image.cmd, image.workdir) == (
        ["/app/run.sh"],
        ["--port", "8080"],
        "/app",
    )
    assert image.env == ["PATH=/usr/bin:/bin", "GREETING=hello world"]
    assert image.argv() == ["/app/run.sh", "--port", "8080"]
    assert image.digest == digest
    assert image.size_mb == 1
    assert (root / "bin" / "tool").read_text() == "v2"  # the upper layer wins
    assert (root / "bin" / "tool").stat().st_mode & 0o777 == 0o755
    assert (root / "bin" / "tool-hard").read_text() == "v1"  # the link kept the old inode
    assert os.readlink(root / "tool-link") == "bin/tool"
    assert not (root / "gone.txt").exists()
    assert (root / "etc" / "conf").read_text() == "a" and not (root / "etc" / "keep").exists()
    assert sorted(p.name for p in (root / "data").iterdir()) == ["new"]  # opaque
    assert (root / "data").stat().st_mode & 0o777 == 0o750
    assert (root / "data").stat().st_mtime == 1_700_000_000
    assert (root / "pipe").is_fifo()
    assert (root / "app" / "run.sh").stat().st_mode & 0o111
    assert root.stat().st_mode & 0o777 == 0o755
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no work dir left


def test_hard_links_of_one_layer_share_an_inode(tmp_path: Path) -> None:
    layout_of(tmp_path / "layout", [tar_bytes(LOWER)])
    root = import_oci(tmp_path / "layout", tmp_path / "rootfs").rootfs
    assert (root / "bin" / "tool").stat().st_ino == (root / "bin" / "tool-hard").stat().st_ino
    assert (root / "bin" / "tool").stat().st_nlink == 2


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("file", "../evil", "x")], "'..'"),
        ([("file", "a/../../evil", "x")], "'..'"),
        ([("file", "/etc/evil", "x")], "absolute"),
        ([("hardlink", "h", "../../etc/passwd")], "'..'"),
        ([("hardlink", "h", "missing")], "missing"),
        ([("file", ".wh...", "")], "whiteout"),
    ],
)
def test_escaping_entries_are_refused(tmp_path: Path, entries: list[Entry], message: str) -> None:
    layout_of(tmp_path / "layout", [tar_bytes(entries)])
    with pytest.raises(OciError, match=message):
        import_oci(tmp_path / "layout", tmp_path / "out" / "rootfs")
    assert not (tmp_path / "evil").exists()
    assert list((tmp_path / "out").iterdir()) == []  # nothing half-built is left


def test_symlinks_never_lead_out_of_the_rootfs(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("unchanged")
    lower = [
        ("symlink", "escape", str(outside)),  # absolute: means <rootfs>/<outside>
        ("symlink", "up", "../../../../../../.."),  # stops at the rootfs
        ("symlink", "secret-link", str(outside / "secret")),
    ]
    upper = [
        ("file", "escape/pwned", "x"),
        ("file", "up/pwned2", "y"),
        ("file", "secret-link", "overwritten?"),  # replaces the link, not its target
    ]
    layout_of(tmp_path / "layout", [tar_bytes(lower), tar_bytes(upper)])
    root = import_oci(tmp_path / "layout", tmp_path / "rootfs").rootfs
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_text() == "unchanged"
    assert (root / str(outside).lstrip("/") / "pwned").read_text() == "x"
    assert (root / "pwned2").read_text() == "y"
    assert not (root / "secret-link").is_symlink()
    assert (root / "secret-link").read_text() == "overwritten?"


def test_a_blob_that_does_not_match_its_digest_is_refused(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    layer = tar_bytes([("file", "f", "good")])
    layout_of(layout, [layer])
    name = hashlib.sha256(layer).hexdigest()
    (layout / "blobs" / "sha256" / name).write_bytes(tar_bytes([("file", "f", "evil")]))
    with pytest.raises(OciError, match="does not match its digest"):
        import_oci(layout, tmp_path / "rootfs")
    assert not (tmp_path / "rootfs").exists()


def test_a_tampered_manifest_is_refused(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    digest = layout_of(layout, [tar_bytes([("file", "f", "x")])])
    blob = layout / "blobs" / "sha256" / digest.removeprefix("sha256:")
    blob.write_bytes(blob.read_bytes().replace(b'"schemaVersion": 2', b'"schemaVersion":  2'))
    with pytest.raises(OciError, match="does not match its digest"):
        import_oci(layout, tmp_path / "rootfs")


def test_refs_and_platforms_choose_the_image(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    first = image_manifest(layout, [tar_bytes([("file", "which", "first")])], {})
    first["annotations"] = {
        "org.opencontainers.image.ref.name": "1",
        "io.containerd.image.name": "docker.io/library/first:1",  # as Docker 25 writes it
    }
    arm = image_manifest(layout, [tar_bytes([("file", "which", "arm64")])], {})
    amd = image_manifest(layout, [tar_bytes([("file", "which", "amd64")])], {})
    arm["platform"] = {"os": "linux", "architecture": "arm64"}
    amd["platform"] = {"os": "linux", "architecture": "amd64"}
    nested = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [arm, amd]}
    multi = add_blob(layout, json.dumps(nested).encode(), INDEX)
    multi["annotations"] = {"org.opencontainers.image.ref.name": "multi"}
    write_index(layout, [first, multi])
    with pytest.raises(OciError, match="choose one with ref"):
        import_oci(layout, tmp_path / "none")
    with pytest.raises(OciError, match="no image named 'nope'"):
        import_oci(layout, tmp_path / "none", ref="nope")
    image = import_oci(layout, tmp_path / "first", ref="first:1")
    assert (image.rootfs / "which").read_text() == "first"
    assert (import_oci(layout, tmp_path / "by-ref", ref="1").rootfs / "which").exists()
    assert image.workdir == "/" and image.entrypoint == [] and image.cmd == []
    image = import_oci(layout, tmp_path / "multi", ref="multi")
    assert (image.rootfs / "which").read_text() == "amd64"
    assert image.digest == amd["digest"]


def test_an_oci_archive_tarball_imports_like_its_directory(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    digest = layout_of(layout, [tar_bytes(LOWER, gz=True), tar_bytes(UPPER)])
    for mode, name in (("w", "image.tar"), ("w:gz", "image.tar.gz")):
        archive = tar_dir(layout, tmp_path / name, mode)
        image = import_oci(archive, tmp_path / f"rootfs-{name}")
        assert image.digest == digest
        assert (image.rootfs / "bin" / "tool").read_text() == "v2"
        assert not (image.rootfs / "gone.txt").exists()


def docker_save(directory: Path, layers: list[bytes], tags: list[str]) -> Path:
    """Write a `docker save` tarball (the format before Docker 25)."""
    content = directory / "content"
    content.mkdir()
    diff_ids, names = [], []
    for number, layer in enumerate(layers):
        (content / f"layer{number}").mkdir()
        (content / f"layer{number}" / "layer.tar").write_bytes(layer)
        diff_ids.append(f"sha256:{hashlib.sha256(layer).hexdigest()}")
        names.append(f"layer{number}/layer.tar")
    config = json.dumps(
        {
            "config": {"Entrypoint": ["/app/run.sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    (content / config_name).write_bytes(config)
    manifest = [{"Config": config_name, "RepoTags": tags, "Layers": names}]
    (content / "manifest.json").write_text(json.dumps(manifest))
    return tar_dir(content, directory / "saved.tar")


def test_a_docker_save_tarball_imports(tmp_path: Path) -> None:
    saved = docker_save(tmp_path, [tar_bytes(LOWER), tar_bytes(UPPER)], ["app:1"])
    image = import_oci(saved, tmp_path / "rootfs", ref="app:1")
    assert image.entrypoint == ["/app/run.sh"]
    assert image.digest.startswith("sha256:")
    assert (image.rootfs / "bin" / "tool").read_text() == "v2"
    assert sorted(p.name for p in (image.rootfs / "data").iterdir()) == ["new"]
    with pytest.raises(OciError, match="no image tagged 'app:2'"):
        import_oci(saved, tmp_path / "other", ref="app:2")


def test_a_docker_save_layer_that_does_not_match_its_diff_id_is_refused(tmp_path: Path) -> None:
    saved = docker_save(tmp_path, [tar_bytes(LOWER)], [])
    content = tmp_path / "content"
    (content / "layer0" / "layer.tar").write_bytes(tar_bytes(UPPER))
    tar_dir(content, saved)
    with pytest.raises(OciError, match="does not match its digest"):
        import_oci(saved, tmp_path / "rootfs")
    assert not (tmp_path / "rootfs").exists()


def test_sources_that_are_no_image_are_refused(tmp_path: Path) -> None:
    with pytest.raises(OciError, match="no such file"):
        import_oci(tmp_path / "missing", tmp_path / "rootfs")
    (tmp_path / "empty").mkdir()
    with pytest.raises(OciError, match=r"no index\.json"):
        import_oci(tmp_path / "empty", tmp_path / "rootfs")
    (tmp_path / "junk").write_bytes(b"not a tar")
    with pytest.raises(OciError, match="neither an OCI layout"):
        import_oci(tmp_path / "junk", tmp_path / "rootfs")
    layout_of(tmp_path / "layout", [tar_bytes([("file", "f", "x")])])
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "f").write_text("mine")
    with pytest.raises(OciError, match="exists already"):
        import_oci(tmp_path / "layout", tmp_path / "taken")
    assert (tmp_path / "taken" / "f").read_text() == "mine"


def test_cli_import_oci_extracts_and_registers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = FakeFrontEnd().install(monkeypatch)
    layout = tmp_path / "layout"
    config = {"Entrypoint": ["/app/run.sh"], "Env": ["A=1"], "WorkingDir": "/app"}
    digest = layout_of(layout, [tar_bytes(UPPER)], config)
    image = owned(7, "app", datastore_id=1, kind="OS", state=1, state_name="READY")
    image |= {"persistent": False, "size_mb": 1, "format": "dir", "path": "", "source": ""}
    api.on("POST", "/images", image | {"running_vms": 0}, 201)
    target = tmp_path / "images" / "app"
    result = run("image", "import-oci", str(layout), "--name", "app", "--dir", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "created image 7"
    if not os.stat(tmp_path.parent.parent).st_mode & 0o001:  # pytest's base: mode 0700
        assert "not searchable by others" in result.stderr
    assert api.sent("POST", "/images") == {
        "name": "app",
        "datastore_id": 1,
        "kind": "OS",
        "size_mb": 1,
        "format": "dir",
        "path": str(target / "rootfs"),
        "template": {
            "OCI_DIGEST": digest,
            "OCI_ENTRYPOINT": '["/app/run.sh"]',
            "OCI_CMD": "[]",
            "OCI_ENV": '["A=1"]',
            "OCI_WORKDIR": "/app",
        },
    }
    assert (target / "rootfs" / "app" / "run.sh").exists()
    assert json.loads((target / "oci.json").read_text())["digest"] == digest


def test_cli_import_oci_undoes_its_work_when_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = FakeFrontEnd().install(monkeypatch)
    layout_of(tmp_path / "layout", [tar_bytes(UPPER)])
    refused = {
        "error": "invalid",
        "message": "registering a path on the hosts is for administrators",
    }
    api.on("POST", "/images", refused, 422)
    target = tmp_path / "images" / "app"
    result = run(
        "image", "import-oci", str(tmp_path / "layout"), "--name", "app", "--dir", str(target)
    )
    assert result.exit_code == 1
    assert "administrators" in result.output
    assert not target.exists()
    result = run(
        "image", "import-oci", str(tmp_path / "nothing"), "--name", "app", "--dir", str(target)
    )
    assert result.exit_code == 1 and "no such file" in result.output
