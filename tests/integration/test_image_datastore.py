"""Image datastores: uploads, downloads, imports, clones; bad bytes give ERROR with the reason."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgecloud.client import Client, EdgecloudError
from tests.support.frontend import RunningFrontEnd
from tests.support.web import serve_directory


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """An HTTP server on loopback serving a temp directory: (base URL, directory)."""
    root = tmp_path_factory.mktemp("web")
    with serve_directory(root) as url:
        yield url, root


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _qcow2(path: Path, size: str = "64M") -> bytes:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    return path.read_bytes()


def _rootfs_tar_gz() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"#!/bin/sh\necho hi\n"
        info = tarfile.TarInfo("sbin/init")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue())


def test_an_upload_is_stored_with_its_checksum(
    admin: Client, frontend: RunningFrontEnd, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    data = os.urandom(3 * 2**20 + 5)
    file = tmp_path / "disk.raw"
    file.write_bytes(data)
    seen: list[int] = []
    image = admin.images.create(name=unique("up"), upload=True, checksum=_sha(data))
    assert image.state_name == "LOCKED" and image.checksum == ""
    done = admin.images.upload(image.id, file, progress=lambda sent, total: seen.append(sent))
    assert done.state_name == "READY"
    assert (done.format, done.bytes, done.checksum) == ("raw", len(data), _sha(data))
    assert done.size_mb == 4 and seen[-1] == len(data)
    stored = Path(done.source)
    assert stored.is_relative_to(frontend.settings.home / "datastores" / "1")
    assert stored.read_bytes() == data
    with pytest.raises(EdgecloudError) as again:
        admin.images.upload(image.id, file)
    assert again.value.status == 409
    admin.images.delete(image.id)
    assert not stored.exists()


def test_formats_are_detected_and_wrong_ones_refused(
    admin: Client, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    qcow = tmp_path / "disk.qcow2"
    data = _qcow2(qcow)
    image = admin.images.create(name=unique("q"), upload=True)
    done = admin.images.upload(image.id, qcow)
    assert (done.format, done.size_mb, done.checksum) == ("qcow2", 64, _sha(data))

    vmdk = tmp_path / "disk.vmdk"
    vmdk.write_bytes(b"KDMV" + bytes(1020))
    bad = admin.images.create(name=unique("vmdk"), upload=True)
    with pytest.raises(EdgecloudError) as caught:
        admin.images.upload(bad.id, vmdk)
    assert caught.value.status == 422 and caught.value.field == "body"
    assert "vmdk is not supported" in str(caught.value)
    failed = admin.images.get(bad.id)
    assert failed.state_name == "ERROR" and "vmdk" in failed.last_error
    assert not list(Path(failed.source or "/nonexistent").parent.glob(f"{bad.id}*"))
    # The same image takes a good upload afterwards.
    assert admin.images.upload(bad.id, qcow).state_name == "READY"

    declared = admin.images.create(name=unique("decl"), upload=True, format="qcow2")
    raw = tmp_path / "raw.img"
    raw.write_bytes(os.urandom(4096))
    with pytest.raises(EdgecloudError, match="declared format qcow2 but the bytes are raw"):
        admin.images.upload(declared.id, raw)

    tgz = tmp_path / "rootfs.tar.gz"
    tgz.write_bytes(_rootfs_tar_gz())
    tree = admin.images.create(name=unique("tree"), upload=True)
    assert admin.images.upload(tree.id, tgz).format == "dir"

    with pytest.raises(EdgecloudError) as unknown:
        admin.images.create(name=unique("x"), upload=True, format="vhd")
    assert unknown.value.status == 422 and unknown.value.field == "format"


def test_a_url_is_downloaded_and_a_bad_one_fails_with_the_reason(
    admin: Client, web: tuple[str, Path], unique: Callable[[str], str]
) -> None:
    base, root = web
    data = os.urandom(2 * 2**20)
    (root / "good.img").write_bytes(data)
    good = admin.images.create(name=unique("url"), url=f"{base}/good.img", checksum=_sha(data))
    assert good.state_name == "LOCKED"
    ready = admin.images.wait_ready(good.id, timeout=60)
    assert (ready.checksum, ready.bytes, ready.origin) == (
        _sha(data),
        len(data),
        f"{base}/good.img",
    )

    corrupt = admin.images.create(
        name=unique("corrupt"), url=f"{base}/good.img", checksum=_sha(b"something else")
    )
    with pytest.raises(RuntimeError, match="checksum mismatch"):
        admin.images.wait_ready(corrupt.id, timeout=60)
    missing = admin.images.create(name=unique("missing"), url=f"{base}/nope.img")
    with pytest.raises(RuntimeError, match="HTTP 404"):
        admin.images.wait_ready(missing.id, timeout=60)


def test_import_path_is_for_administrators_and_clone_copies(
    admin: Client,
    make_user: Callable[..., Client],
    tmp_path: Path,
    unique: Callable[[str], str],
) -> None:
    data = os.urandom(1 << 20)
    source = tmp_path / "seed.raw"
    source.write_bytes(data)
    image = admin.images.create(name=unique("imp"), import_path=str(source))
    ready = admin.images.wait_ready(image.id, timeout=60)
    assert ready.checksum == _sha(data)
    user = make_user()
    with pytest.raises(EdgecloudError) as caught:
        user.images.create(name=unique("imp"), import_path=str(source))
    assert caught.value.status == 422 and caught.value.field == "import_path"
    with pytest.raises(EdgecloudError) as both:
        admin.images.create(name=unique("two"), import_path=str(source), url="http://127.0.0.1/x")
    assert both.value.status == 422

    copy = admin.images.wait_ready(admin.images.clone(ready.id, unique("copy")).id, timeout=60)
    assert copy.checksum == ready.checksum and copy.source != ready.source
    assert Path(copy.source).read_bytes() == data


def test_an_image_in_use_or_locked_is_protected(
    admin: Client, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    locked = admin.images.create(name=unique("locked"), upload=True)
    with pytest.raises(EdgecloudError) as caught:
        admin.vms.create(template={"CPU": 1, "MEMORY": 64, "DISK": {"IMAGE_ID": locked.id}})
    assert caught.value.status == 422
    assert caught.value.field == "template.DISK[0].IMAGE_ID" and "LOCKED" in str(caught.value)

    file = tmp_path / "d.raw"
    file.write_bytes(os.urandom(65536))
    admin.images.upload(locked.id, file)
    persistent = admin.images.update(locked.id, persistent=True)
    assert persistent.persistent
    vm = admin.vms.create(template={"CPU": 1, "MEMORY": 64, "DISK": {"IMAGE_ID": locked.id}})
    used = admin.images.get(locked.id)
    assert (used.state_name, used.running_vms) == ("USED_PERS", 1)
    with pytest.raises(EdgecloudError) as second:
        admin.vms.create(template={"CPU": 1, "MEMORY": 64, "DISK": {"IMAGE_ID": locked.id}})
    assert "persistent and already used" in str(second.value)
    with pytest.raises(EdgecloudError) as deleting:
        admin.images.delete(locked.id)
    assert deleting.value.status == 409
    assert Path(used.source).exists()
    admin.vms.action(vm.id, "terminate", hard=True)
    admin.vms.wait(vm.id, ["DONE"], timeout=60)
    assert admin.images.get(locked.id).state_name == "READY"
    admin.images.delete(locked.id)


def test_a_full_datastore_is_refused_and_nothing_is_left(
    admin: Client, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], check=True)
    try:
        ds = admin.datastores.create(
            name=unique("small"), kind="image", template={"BASE_PATH": str(small)}
        )
        big = tmp_path / "big.raw"
        big.write_bytes(os.urandom(3 * 2**20))
        image = admin.images.create(name=unique("big"), upload=True, datastore_id=ds.id)
        with pytest.raises(EdgecloudError) as caught:
            admin.images.upload(image.id, big)
        assert caught.value.status == 409 and "datastore full" in str(caught.value)
        assert admin.images.get(image.id).state_name == "ERROR"
        assert list(small.iterdir()) == []
        admin.images.delete(image.id)
        admin.datastores.delete(ds.id)
    finally:
        subprocess.run(["umount", str(small)], check=False)


def _bundle(path: Path, manifest: dict[str, object], files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in {"manifest.json": json.dumps(manifest).encode(), **files}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_a_bundle_is_imported_and_a_bad_one_refused(
    admin: Client, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    disk = _qcow2(tmp_path / "d.qcow2", "16M")
    manifest = {
        "format": "edgecloud-bundle/1",
        "name": "bundled",
        "template": {"CPU": 1, "MEMORY": 64},
        "disks": [{"disk_id": 0, "file": "disk.0.qcow2", "sha256": _sha(disk), "kind": "OS"}],
    }
    good = _bundle(tmp_path / "good.tar", manifest, {"disk.0.qcow2": disk})
    vm = admin.vms.import_bundle(good, name=unique("imported"))
    image = admin.images.get(int(vm.template["DISK"][0]["IMAGE_ID"]))
    assert (image.state_name, image.checksum, image.format) == ("USED", _sha(disk), "qcow2")

    not_tar = tmp_path / "junk.tar"
    not_tar.write_bytes(b"hello" * 100)
    with pytest.raises(EdgecloudError) as junk:
        admin.vms.import_bundle(not_tar)
    assert junk.value.status == 422 and junk.value.field == "body"

    wrong = {**manifest, "disks": [{**manifest["disks"][0], "sha256": _sha(b"other")}]}  # type: ignore[dict-item]
    corrupt = _bundle(tmp_path / "corrupt.tar", wrong, {"disk.0.qcow2": disk})
    name = unique("corrupt")
    with pytest.raises(EdgecloudError, match="checksum mismatch") as caught:
        admin.vms.import_bundle(corrupt, name=name)
    assert caught.value.status == 422
    failed = [i for i in admin.images.list() if i.name.startswith(name)]
    assert [i.state_name for i in failed] == ["ERROR"]
    assert not any(v.name == name for v in admin.vms.list())

    other_format = _bundle(tmp_path / "v2.tar", {**manifest, "format": "x/2"}, {})
    with pytest.raises(EdgecloudError, match="not an edgecloud-bundle/1 bundle"):
        admin.vms.import_bundle(other_format)
