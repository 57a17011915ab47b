"""The node's image cache and guest disks, run in-process against a temp ROOT with the real
qemu-img (edgecloud.node.imagecache, untar, disks, disks_snapshot)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgecloud.node.__main__ import handle
from edgecloud.node.guest import parse_spec
from edgecloud.node.qemu_argv import qemu_argv

pytestmark = pytest.mark.skipif(
    not (shutil.which("qemu-img") and shutil.which("qemu-io")), reason="needs qemu-utils"
)
MIB = 1 << 20
GUEST = "one-7"


def call(base: Path, action: str, **fields: Any) -> dict[str, Any]:
    """Run an action in-process; return the whole answer."""
    return handle(action, json.dumps({"root": str(base), **fields}))


def ok(base: Path, action: str, **fields: Any) -> dict[str, Any]:
    answer = call(base, action, **fields)
    assert answer["ok"], answer
    result: dict[str, Any] = answer["result"]
    return result


def refused(base: Path, action: str, kind: str, **fields: Any) -> str:
    answer = call(base, action, **fields)
    assert (answer["ok"], answer["kind"]) == (False, kind), answer
    return str(answer["error"])


def incoming(base: Path) -> Path:
    path = base / "cache" / "images" / "incoming"
    path.mkdir(parents=True, exist_ok=True)
    return path


def upload(base: Path, data: bytes, part: str = "up.1") -> str:
    """Put an upload in incoming/ as the front-end would; return its key."""
    (incoming(base) / part).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def cached(base: Path, data: bytes, unpack: bool = False) -> str:
    key = upload(base, data, "c.part")
    ok(base, "image_commit", key=key, part="c.part", unpack=unpack)
    return key


def qemu_img(*args: str) -> str:
    return subprocess.run(
        ["qemu-img", *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def qcow2_bytes(tmp: Path, pattern: int, size: str = "1M") -> bytes:
    """Return a qcow2 image whose first 64 KiB hold `pattern`."""
    path = tmp / f"img-{pattern}.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(path), size)
    write(path, pattern, 0)
    return path.read_bytes()


def write(disk: Path, pattern: int, offset: int, fmt: str = "qcow2") -> None:
    command = f"write -P {pattern} {offset} 64k"
    subprocess.run(
        ["qemu-io", "-f", fmt, "-c", command, str(disk)],
        check=True,
        capture_output=True,
        timeout=60,
    )


def content(disk: Path, tmp: Path) -> bytes:
    """Return a disk's guest-visible bytes (through any backing chain)."""
    out = tmp / "content.raw"
    out.unlink(missing_ok=True)
    qemu_img("convert", "-O", "raw", str(disk), str(out))
    return out.read_bytes()


def tar_bytes(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, **attrs: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


@pytest.fixture
def base(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    return root


@pytest.fixture
def fake_qemu(base: Path) -> Iterator[int]:
    """A process that passes for the guest's running QEMU (its argv names the pid file)."""
    pidfile = base / "guests" / GUEST / "qemu.pid"
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    code = "import time; time.sleep(120)"
    child = subprocess.Popen([sys.executable, "-c", code, str(pidfile)])
    try:
        pidfile.write_text(f"{child.pid}\n")
        yield child.pid
    finally:
        child.kill()
        child.wait(timeout=10)


# --- the image cache ------------------------------------------------------------------------


def test_commit_checks_the_sha256_and_is_idempotent(base: Path) -> None:
    data = b"disk image bytes" * 1000
    key = upload(base, data)
    assert ok(base, "image_status", key=key) == {"present": False, "bytes": 0, "kind": ""}
    wrong = "0" * 64
    message = refused(base, "image_commit", "failed", key=wrong, part="up.1")
    assert key in message and wrong in message
    assert not (incoming(base) / "up.1").exists()  # deleted
    assert not (base / "cache" / "images" / wrong).exists()
    refused(base, "image_commit", "missing", key=key, part="up.1")

    upload(base, data)
    done = ok(base, "image_commit", key=key, part="up.1", unpack=False)
    entry = base / "cache" / "images" / key
    assert entry.read_bytes() == data
    assert not (incoming(base) / "up.1").exists()
    status = ok(base, "image_status", key=key)
    assert status == {"present": True, "bytes": done["bytes"], "kind": "file"}
    assert done["bytes"] >= len(data)

    upload(base, b"whatever, never read", "up.2")  # present already: the part just goes
    assert ok(base, "image_commit", key=key, part="up.2") == done
    assert not (incoming(base) / "up.2").exists()
    assert entry.read_bytes() == data


@pytest.mark.parametrize("unpack", [False, True])
def test_racing_commits_leave_one_entry(base: Path, unpack: bool) -> None:
    data = tar_bytes((member("etc", tarfile.DIRTYPE), None), (member("etc/a"), b"x" * 5000))
    key = hashlib.sha256(data).hexdigest()
    parts = [f"race.{i}" for i in range(6)]
    for part in parts:
        upload(base, data, part)
    answers: list[dict[str, Any]] = []
    threads = [
        threading.Thread(
            target=lambda p=part: answers.append(
                call(base, "image_commit", key=key, part=p, unpack=unpack)
            )
        )
        for part in parts
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == len(parts) and all(a["ok"] for a in answers), answers
    names = sorted(p.name for p in (base / "cache" / "images").iterdir())
    assert names == sorted([".lock", "incoming", key])
    assert not list(incoming(base).iterdir())
    kind = ok(base, "image_status", key=key)["kind"]
    assert kind == ("dir" if unpack else "file")


def test_unpack_keeps_owners_modes_and_links(base: Path) -> None:
    data = tar_bytes(
        (member(".", tarfile.DIRTYPE, mode=0o755), None),
        (member("./bin", tarfile.DIRTYPE), None),
        (member("./bin/busybox", mode=0o4755, uid=1234, gid=567), b"\x7fELF..."),
        (member("./bin/sh", tarfile.SYMTYPE, linkname="/bin/busybox"), None),
        (member("./bin/ls", tarfile.SYMTYPE, linkname="busybox"), None),
        (member("./bin/ash", tarfile.LNKTYPE, linkname="./bin/busybox"), None),
        (member("./dev", tarfile.DIRTYPE), None),
        (member("./dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3), None),
        (member("./deep/er/file", uid=1000, gid=1000, mode=0o600), b"deep"),
        (member("./tmp", tarfile.DIRTYPE, mode=0o1777), None),
    )
    key = cached(base, data, unpack=True)
    tree = base / "cache" / "images" / key
    busybox = (tree / "bin" / "busybox").stat()
    assert (busybox.st_uid, busybox.st_gid, busybox.st_mode & 0o7777) == (1234, 567, 0o4755)
    assert os.readlink(tree / "bin" / "sh") == "/bin/busybox"
    assert os.readlink(tree / "bin" / "ls") == "busybox"
    assert (tree / "bin" / "ash").stat().st_ino == busybox.st_ino
    assert not (tree / "dev" / "null").exists()  # device nodes are skipped
    assert (tree / "deep" / "er" / "file").read_bytes() == b"deep"
    assert (tree / "deep" / "er" / "file").stat().st_uid == 1000
    assert (tree / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert ok(base, "image_status", key=key)["kind"] == "dir"


MALICIOUS: dict[str, list[tuple[tarfile.TarInfo, bytes | None]]] = {
    "absolute": [(member("/etc/evil"), b"x")],
    "dotdot": [(member("a/../../evil"), b"x")],
    "through-symlink": [
        (member("link", tarfile.SYMTYPE, linkname="{outside}"), None),
        (member("link/evil"), b"x"),
    ],
    "symlink-escapes": [
        (member("a", tarfile.DIRTYPE), None),
        (member("a/up", tarfile.SYMTYPE, linkname="../../{outside_name}"), None),
    ],
    "hardlink-out": [(member("h", tarfile.LNKTYPE, linkname="../etc/passwd"), None)],
    "hardlink-via-symlink": [
        (member("s", tarfile.SYMTYPE, linkname="{outside}"), None),
        (member("h", tarfile.LNKTYPE, linkname="s/secret"), None),
    ],
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_unpack_refuses_malicious_archives(base: Path, tmp_path: Path, case: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret")
    members = []
    for info, data in MALICIOUS[case]:
        info.linkname = info.linkname.format(outside=outside, outside_name=outside.name)
        members.append((info, data))
    data = tar_bytes(*members)
    key = upload(base, data)
    assert "refused" in refused(base, "image_commit", "failed", key=key, part="up.1", unpack=True)
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").stat().st_nlink == 1
    assert sorted(p.name for p in (base / "cache" / "images").iterdir()) == [".lock", "incoming"]
    assert not list(incoming(base).iterdir())  # the part is gone too


def test_eviction_honours_use_and_lru(base: Path, tmp_path: Path) -> None:
    keys = [cached(base, qcow2_bytes(tmp_path, n)) for n in (1, 2, 3)]
    now = time.time()
    for age, key in zip((300, 200, 100), keys, strict=True):  # keys[0] least recently used
        os.utime(base / "cache" / "images" / key, (now - age, now - age))
    ok(base, "disks_prolog", deploy_id=GUEST, disks=[
        {"disk_id": 0, "image": keys[0], "format": "qcow2", "mode": "overlay"}
    ])  # fmt: skip
    listed = {image["key"]: image for image in ok(base, "image_list")["images"]}
    assert [listed[k]["in_use"] for k in keys] == [True, False, False]
    assert listed[keys[0]]["last_used"] > listed[keys[2]]["last_used"]  # the prolog used it
    assert all(image["kind"] == "file" and image["bytes"] > 0 for image in listed.values())
    sizes = [listed[k]["bytes"] for k in keys]

    stale, fresh = incoming(base) / "old.part", incoming(base) / "new.part"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    os.utime(stale, (now - 7200, now - 7200))
    result = ok(base, "image_evict", max_bytes=sum(sizes) - 1)
    assert result == {"removed": [keys[1]], "bytes": sizes[0] + sizes[2]}
    assert not stale.exists() and fresh.exists()
    assert ok(base, "image_evict", max_bytes=0) == {"removed": [keys[2]], "bytes": sizes[0]}
    assert [image["key"] for image in ok(base, "image_list")["images"]] == [keys[0]]
    assert ok(base, "image_drop_part", part="new.part") == {"removed": True}
    assert ok(base, "image_drop_part", part="new.part") == {"removed": False}


# --- a guest's disks ------------------------------------------------------------------------


def test_prolog_makes_overlay_copy_and_volatile_disks(base: Path, tmp_path: Path) -> None:
    qcow = cached(base, qcow2_bytes(tmp_path, 0x11))
    raw_data = b"R" * MIB
    raw = cached(base, raw_data)
    disks: list[dict[str, Any]] = [
        {"disk_id": 0, "image": qcow, "format": "qcow2", "mode": "overlay", "size_mb": 8},
        {"disk_id": 1, "image": raw, "format": "raw", "mode": "copy"},
        {"disk_id": 2, "mode": "volatile", "size_mb": 64},
        {"disk_id": 3, "image": raw, "format": "raw", "mode": "overlay", "size_mb": 1},
    ]
    if shutil.which("mkfs.ext4") or Path("/usr/sbin/mkfs.ext4").exists():
        disks.append({"disk_id": 4, "mode": "volatile", "size_mb": 16, "fs": "ext4"})
    if shutil.which("mkswap") or Path("/usr/sbin/mkswap").exists():
        disks.append({"disk_id": 5, "mode": "volatile", "size_mb": 16, "fs": "swap"})
    answer = ok(base, "disks_prolog", deploy_id=GUEST, disks=disks)["disks"]
    guest = base / "guests" / GUEST
    expected_sizes = {0: 8 * MIB, 1: MIB, 2: 64 * MIB, 3: MIB, 4: 16 * MIB, 5: 16 * MIB}
    assert answer == [
        {
            "disk_id": d["disk_id"],
            "path": str(guest / f"disk.{d['disk_id']}"),
            "format": "qcow2" if d["mode"] == "overlay" else d.get("format", "raw"),
            "virtual_size": expected_sizes[d["disk_id"]],
        }
        for d in disks
    ]
    overlay = json.loads(qemu_img("info", "--output=json", str(guest / "disk.0")))
    assert overlay["full-backing-filename"] == str(base / "cache" / "images" / qcow)
    assert overlay["backing-filename-format"] == "qcow2"
    assert content(guest / "disk.0", tmp_path)[:65536] == b"\x11" * 65536
    assert content(guest / "disk.3", tmp_path) == raw_data
    assert (guest / "disk.1").read_bytes() == raw_data
    assert (guest / "disk.2").stat().st_blocks * 512 < MIB  # sparse
    if any(d["disk_id"] == 4 for d in disks):
        assert (guest / "disk.4").read_bytes()[0x438:0x43A] == b"\x53\xef"  # ext4 magic
    if any(d["disk_id"] == 5 for d in disks):
        assert b"SWAPSPACE2" in (guest / "disk.5").read_bytes()[:8192]

    recorded = json.loads((guest / "disks.json").read_text())["disks"]
    assert recorded["0"]["backing"] == qcow and recorded["1"]["backing"] is None
    assert recorded["2"]["mode"] == "volatile" and recorded["2"]["image"] is None
    listed = {image["key"]: image["in_use"] for image in ok(base, "image_list")["images"]}
    assert listed == {qcow: True, raw: True}  # disk.3 is backed by the raw image
    info = ok(base, "disks_info", deploy_id=GUEST)["disks"]
    assert [d["disk_id"] for d in info] == [d["disk_id"] for d in disks]
    assert all(d["exists"] and d["actual_size"] >= 0 for d in info)
    assert info[1]["actual_size"] >= MIB


def test_prolog_is_idempotent_and_keeps_data(base: Path, tmp_path: Path) -> None:
    raw = cached(base, b"\0" * MIB)
    disks = [
        {"disk_id": 0, "image": raw, "format": "raw", "mode": "overlay"},
        {"disk_id": 1, "image": raw, "format": "raw", "mode": "copy"},
    ]
    first = ok(base, "disks_prolog", deploy_id=GUEST, disks=disks)
    guest = base / "guests" / GUEST
    write(guest / "disk.0", 0x42, 65536)
    write(guest / "disk.1", 0x43, 0, fmt="raw")
    inode = (guest / "disk.0").stat().st_ino
    assert ok(base, "disks_prolog", deploy_id=GUEST, disks=disks) == first
    assert (guest / "disk.0").stat().st_ino == inode
    assert content(guest / "disk.0", tmp_path)[65536:131072] == b"\x42" * 65536
    assert (guest / "disk.1").read_bytes()[:65536] == b"\x43" * 65536
    # a prolog of more disks keeps the first ones, and their records
    more = [*disks, {"disk_id": 2, "mode": "volatile", "size_mb": 1}]
    assert len(ok(base, "disks_prolog", deploy_id=GUEST, disks=more)["disks"]) == 3
    assert (guest / "disk.0").stat().st_ino == inode
    assert sorted(json.loads((guest / "disks.json").read_text())["disks"]) == ["0", "1", "2"]


def test_failed_prolog_removes_only_what_it_made(base: Path, tmp_path: Path) -> None:
    raw = cached(base, b"\0" * MIB)
    ok(
        base,
        "disks_prolog",
        deploy_id=GUEST,
        disks=[{"disk_id": 9, "mode": "volatile", "size_mb": 1}],
    )
    guest = base / "guests" / GUEST
    missing = "e" * 64
    disks = [
        {"disk_id": 0, "mode": "volatile", "size_mb": 1},
        {"disk_id": 1, "image": missing, "format": "qcow2", "mode": "overlay"},
    ]
    assert missing in refused(base, "disks_prolog", "missing", deploy_id=GUEST, disks=disks)
    assert not (guest / "disk.0").exists()
    disks[1] = {"disk_id": 1, "image": raw, "format": "qcow2", "mode": "overlay"}  # it is raw
    refused(base, "disks_prolog", "failed", deploy_id=GUEST, disks=disks)
    assert sorted(p.name for p in guest.iterdir()) == ["disk.9", "disks.json"]
    # a cached qcow2 that names a backing file of the host is refused
    evil = tmp_path / "evil.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-F", "raw", "-b", "/etc/hostname", str(evil), "1M")
    key = cached(base, evil.read_bytes())
    disks = [{"disk_id": 3, "image": key, "format": "qcow2", "mode": "copy"}]
    assert "backing" in refused(base, "disks_prolog", "failed", deploy_id=GUEST, disks=disks)
    assert not (guest / "disk.3").exists()


def test_offline_snapshots(base: Path, tmp_path: Path) -> None:
    raw = cached(base, b"\0" * MIB)
    disks = [
        {"disk_id": 0, "image": raw, "format": "raw", "mode": "overlay"},
        {"disk_id": 1, "mode": "volatile", "size_mb": 1},
    ]
    ok(base, "disks_prolog", deploy_id=GUEST, disks=disks)
    disk = base / "guests" / GUEST / "disk.0"
    target: dict[str, Any] = {"deploy_id": GUEST, "disk_id": 0}
    write(disk, 0x01, 0)
    assert ok(base, "disk_snapshot", **target, op="list") == {"snapshots": []}
    snaps = ok(base, "disk_snapshot", **target, op="create", name="s1")["snapshots"]
    assert [s["name"] for s in snaps] == ["s1"]
    assert snaps[0]["id"] and isinstance(snaps[0]["date"], float)
    assert "vm_state_size" in snaps[0]
    write(disk, 0x02, 0)
    ok(base, "disk_snapshot", **target, op="create", name="s2")
    again = ok(base, "disk_snapshot", **target, op="create", name="s2")["snapshots"]
    assert [s["name"] for s in again] == ["s1", "s2"]  # a retried create adds nothing
    write(disk, 0x03, 0)
    assert content(disk, tmp_path)[:65536] == b"\x03" * 65536

    ok(base, "disk_snapshot", **target, op="revert", name="s1")
    assert content(disk, tmp_path)[:65536] == b"\x01" * 65536
    ok(base, "disk_snapshot", **target, op="revert", name="s2")
    assert content(disk, tmp_path)[:65536] == b"\x02" * 65536
    left = ok(base, "disk_snapshot", **target, op="delete", name="s1")["snapshots"]
    assert [s["name"] for s in left] == ["s2"]
    assert ok(base, "disk_snapshot", **target, op="delete", name="s1")["snapshots"] == left
    refused(base, "disk_snapshot", "missing", **target, op="revert", name="s1")
    refused(base, "disk_snapshot", "failed", deploy_id=GUEST, disk_id=1, op="list")  # raw
    refused(base, "disk_snapshot", "missing", deploy_id=GUEST, disk_id=5, op="list")
    refused(base, "disk_snapshot", "missing", deploy_id="one-99", disk_id=0, op="list")


def test_export_flattens_the_backing_chain(base: Path, tmp_path: Path) -> None:
    key = cached(base, qcow2_bytes(tmp_path, 0x21, size="2M"))
    disks = [{"disk_id": 0, "image": key, "format": "qcow2", "mode": "overlay"}]
    ok(base, "disks_prolog", deploy_id=GUEST, disks=disks)
    disk = base / "guests" / GUEST / "disk.0"
    write(disk, 0x22, MIB)
    exported = ok(base, "disk_export", deploy_id=GUEST, disk_id=0, part="export.0")
    out = incoming(base) / "export.0"
    assert exported == {
        "bytes": out.stat().st_size,
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
    }
    found = json.loads(qemu_img("info", "--output=json", str(out)))
    assert found["format"] == "qcow2" and "backing-filename" not in found
    flat = content(out, tmp_path)
    assert flat[:65536] == b"\x21" * 65536 and flat[MIB : MIB + 65536] == b"\x22" * 65536
    assert [p.name for p in incoming(base).iterdir()] == ["export.0"]  # no scratch left
    assert ok(base, "image_drop_part", part="export.0") == {"removed": True}
    assert not out.exists()


def test_running_guest_refuses_revert_and_export(base: Path, fake_qemu: int) -> None:
    raw = cached(base, b"\0" * MIB)
    disks = [{"disk_id": 0, "image": raw, "format": "raw", "mode": "overlay"}]
    ok(base, "disks_prolog", deploy_id=GUEST, disks=disks)
    target: dict[str, Any] = {"deploy_id": GUEST, "disk_id": 0}
    message = refused(base, "disk_snapshot", "failed", **target, op="revert", name="s1")
    assert "power it off" in message
    message = refused(base, "disk_export", "failed", **target, part="x.qcow2")
    assert "running" in message and "power it off" in message
    assert not (incoming(base) / "x.qcow2").exists()


BAD_INPUT = [
    ("image_status", {"key": "ABC"}, "'key'"),
    ("image_status", {"key": "A" * 64}, "'key'"),
    ("image_commit", {"key": "a" * 64, "part": "../x"}, "'part'"),
    ("image_commit", {"key": "a" * 64, "part": ".."}, "'part'"),
    ("image_commit", {"key": "a" * 64, "part": "p", "unpack": "yes"}, "'unpack'"),
    ("image_evict", {"max_bytes": -1}, "'max_bytes'"),
    ("image_drop_part", {"part": "a/b"}, "'part'"),
    ("disks_prolog", {"deploy_id": GUEST, "disks": {}}, "'disks'"),
    ("disks_prolog", {"deploy_id": "../etc", "disks": []}, "'deploy_id'"),
    ("disks_prolog", {"deploy_id": GUEST, "disks": [{"disk_id": 0, "mode": "x"}]}, "'mode'"),
    ("disks_prolog", {"deploy_id": GUEST, "disks": [{"disk_id": -1}]}, "'disk_id'"),
    (
        "disks_prolog",
        {"deploy_id": GUEST, "disks": [{"disk_id": 0, "mode": "volatile"}]},
        "'size_mb'",
    ),
    (
        "disks_prolog",
        {"deploy_id": GUEST, "disks": [{"disk_id": 0, "mode": "overlay", "image": "x"}]},
        "'image'",
    ),
    (
        "disks_prolog",
        {"deploy_id": GUEST, "disks": [{"disk_id": 0, "mode": "volatile", "size_mb": 1}] * 2},
        "twice",
    ),
    ("disk_snapshot", {"deploy_id": GUEST, "disk_id": 0, "op": "list!"}, "'op'"),
    ("disk_snapshot", {"deploy_id": GUEST, "disk_id": 0, "op": "create", "name": "a b"}, "'name'"),
    ("disk_snapshot", {"deploy_id": GUEST, "disk_id": 0, "op": "create"}, "'name'"),
    ("disk_export", {"deploy_id": GUEST, "disk_id": "0", "part": "p"}, "'disk_id'"),
]


@pytest.mark.parametrize(("action", "fields", "named"), BAD_INPUT)
def test_bad_input_names_the_field(
    base: Path, action: str, fields: dict[str, Any], named: str
) -> None:
    (base / "guests" / GUEST).mkdir(parents=True)
    assert named in refused(base, action, "bad_request", **fields)


def test_drives_have_ids_qmp_can_address() -> None:
    disks = [{"path": "/g/disk.3", "format": "qcow2"}, {"path": "/g/disk.5", "format": "raw"}]
    spec = parse_spec({"deploy_id": GUEST, "kernel": "/k", "disks": disks}, "kvm")
    spec["disks"] = [{**d, "disk_id": n} for d, n in zip(spec["disks"], (3, 5), strict=True)]
    argv = qemu_argv(spec, Path("/g"), "tcg")
    drives = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-drive"]
    assert drives == [
        "id=disk3,file=/g/disk.3,format=qcow2,if=virtio",
        "id=disk5,file=/g/disk.5,format=raw,if=virtio",
    ]
    spec["kind"] = "microvm"
    argv = qemu_argv(spec, Path("/g"), "tcg")
    assert "id=disk5,file=/g/disk.5,format=raw,if=none" in argv
    assert "virtio-blk-device,drive=disk5" in argv
