"""The tiny images' pure parts: the newc cpio writer, module load order, the build cache."""

from __future__ import annotations

import gzip
import json
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from edgecloud.images import tiny
from edgecloud.images.cpio import CpioWriter, read_newc
from edgecloud.images.kmods import (
    MissingModule,
    load_order,
    module_name,
    parse_builtin,
    parse_modules_dep,
)
from tests.unit.test_cli_context import run

pytestmark = pytest.mark.unit


def test_cpio_round_trips_every_entry_kind() -> None:
    cpio = CpioWriter(mtime=1700000000)
    cpio.add_dir("bin")
    cpio.add_file("bin/busybox", b"\x7fELF...", perm=0o755)
    cpio.add_symlink("bin/sh", "/bin/busybox")
    cpio.add_dir("dev")
    cpio.add_char_device("dev/console", 5, 1)
    entries = read_newc(cpio.getvalue())
    assert [(name, stat.S_IFMT(mode)) for name, mode, _, _ in entries] == [
        ("bin", stat.S_IFDIR),
        ("bin/busybox", stat.S_IFREG),
        ("bin/sh", stat.S_IFLNK),
        ("dev", stat.S_IFDIR),
        ("dev/console", stat.S_IFCHR),
    ]
    by_name = {name: (mode, data, rdev) for name, mode, data, rdev in entries}
    assert by_name["bin/busybox"] == (stat.S_IFREG | 0o755, b"\x7fELF...", (0, 0))
    assert by_name["bin/sh"][1] == b"/bin/busybox"
    assert by_name["dev/console"][2] == (5, 1)


def test_cpio_layout_is_newc_aligned_and_padded() -> None:
    cpio = CpioWriter()
    cpio.add_file("ab", b"xyz")  # 110-byte header + "ab\0" -> 3 bytes of padding
    raw = cpio.getvalue()
    assert raw.startswith(b"070701")
    assert raw[110:113] == b"ab\0" and raw[113:116] == b"\0\0\0"
    assert raw[116:119] == b"xyz" and raw[119] == 0  # data padded to 4 bytes
    assert raw[120:126] == b"070701" and b"TRAILER!!!\0" in raw
    assert len(raw) % 512 == 0
    assert int(raw[6 + 8 * 6 : 6 + 8 * 7], 16) == 3  # c_filesize


def test_cpio_gzip_is_reproducible() -> None:
    def archive() -> bytes:
        cpio = CpioWriter(mtime=5)
        cpio.add_file("init", b"#!/bin/sh\n", perm=0o755)
        return cpio.gzipped()

    assert archive() == archive()
    assert read_newc(gzip.decompress(archive()))[0][0] == "init"


def test_cpio_rejects_duplicates_and_adds_parents_once() -> None:
    cpio = CpioWriter()
    cpio.add_parents("lib/modules/6.1/kernel/x.ko")
    cpio.add_parents("lib/modules/6.1/kernel/y.ko")
    assert cpio.names() == {"lib", "lib/modules", "lib/modules/6.1", "lib/modules/6.1/kernel"}
    with pytest.raises(ValueError, match="duplicate"):
        cpio.add_dir("/lib/")


MODULES_DEP = """\
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko \
kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/scsi/sr_mod.ko.xz: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/cdrom/cdrom.ko
kernel/drivers/scsi/scsi_mod.ko:
kernel/drivers/cdrom/cdrom.ko:
"""


def _before(order: list[str], first: str, then: str) -> bool:
    names = [module_name(path) for path in order]
    return names.index(first) < names.index(then)


def test_load_order_puts_dependencies_first_once() -> None:
    deps = parse_modules_dep(MODULES_DEP)
    order = load_order(deps, ["virtio_pci", "virtio-net", "sr_mod", "virtio_pci"])
    assert len(order) == len(set(order))
    assert _before(order, "virtio", "virtio_pci") and _before(order, "virtio_ring", "virtio_pci")
    # transitive: failover is only a dependency of net_failover, not listed for virtio_net
    assert _before(order, "failover", "net_failover") and _before(
        order, "net_failover", "virtio_net"
    )
    assert _before(order, "scsi_mod", "sr_mod") and _before(order, "cdrom", "sr_mod")
    assert "kernel/drivers/scsi/sr_mod.ko.xz" in order
    assert "kernel/drivers/virtio/virtio_mmio.ko" not in order


def test_load_order_skips_builtin_and_optional_but_not_required_missing() -> None:
    deps = parse_modules_dep(MODULES_DEP)
    builtin = parse_builtin("kernel/net/packet/af_packet.ko\n")
    order = load_order(
        deps, ["af_packet", "virtio_mmio", "cdrom"], builtin=builtin, optional=["virtio_mmio"]
    )
    assert [module_name(path) for path in order] == ["cdrom"]
    with pytest.raises(MissingModule, match="isofs"):
        load_order(deps, ["isofs"])


def test_load_order_reports_cycles() -> None:
    deps = parse_modules_dep("a.ko: b.ko\nb.ko: a.ko\n")
    with pytest.raises(ValueError, match="cycle"):
        load_order(deps, ["a"])


def test_parse_modules_dep_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="no ':'"):
        parse_modules_dep("kernel/x.ko kernel/y.ko\n")


def _fake_build(calls: list[Path], *, fail: bool = False) -> Callable[[Path], None]:
    def build(out: Path) -> None:
        calls.append(out)
        (out / "vmlinuz").write_bytes(b"kernel")
        if fail:
            raise tiny.ImageBuildError("apt-get download failed")
        (out / "initrd.img").write_bytes(b"initrd")
        (out / "rootfs").mkdir()
        manifest = {
            "recipe": tiny.recipe(),
            "cmdline": tiny.CMDLINE,
            "microvm_cmdline": tiny.MICROVM_CMDLINE,
            "marker": "EDGECLOUD-READY",
        }
        (out / "manifest.json").write_text(json.dumps(manifest))

    return build


def test_ensure_tiny_builds_once_then_reads_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(tiny, "_build", _fake_build(calls))
    first = tiny.ensure_tiny(tmp_path)
    second = tiny.ensure_tiny(tmp_path)
    assert first == second and len(calls) == 1
    assert first.kernel.read_bytes() == b"kernel" and first.rootfs.is_dir()
    assert first.microvm_cmdline == tiny.MICROVM_CMDLINE
    assert first.kernel.parent == (tmp_path / "current").resolve()


def test_ensure_tiny_rebuild_swaps_and_keeps_only_the_build_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(tiny, "_build", _fake_build(calls))
    first = tiny.ensure_tiny(tmp_path)
    second = tiny.ensure_tiny(tmp_path, rebuild=True)
    assert len(calls) == 2 and second.kernel != first.kernel
    assert tiny.ensure_tiny(tmp_path) == second
    assert first.kernel.exists()  # a caller may still be about to use it
    third = tiny.ensure_tiny(tmp_path, rebuild=True)
    assert third.kernel.exists() and second.kernel.exists() and not first.kernel.parent.exists()


def test_ensure_tiny_failed_build_leaves_the_cache_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".build-crashed").mkdir()  # left by a process killed mid-build
    (tmp_path / ".current-1").symlink_to(".build-crashed")
    monkeypatch.setattr(tiny, "_build", _fake_build([], fail=True))
    with pytest.raises(tiny.ImageBuildError):
        tiny.ensure_tiny(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]
    monkeypatch.setattr(tiny, "_build", _fake_build([]))
    good = tiny.ensure_tiny(tmp_path)
    monkeypatch.setattr(tiny, "_build", _fake_build([], fail=True))
    with pytest.raises(tiny.ImageBuildError):
        tiny.ensure_tiny(tmp_path, rebuild=True)
    assert tiny.ensure_tiny(tmp_path) == good


def test_ensure_tiny_concurrent_callers_build_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(tiny, "_build", _fake_build(calls))
    results: list[tiny.Tiny] = []
    threads = [
        threading.Thread(target=lambda: results.append(tiny.ensure_tiny(tmp_path)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len(results) == 4 and len(set(results)) == 1


def test_ensure_tiny_rebuilds_a_cache_of_another_recipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(tiny, "_build", _fake_build(calls))
    tiny.ensure_tiny(tmp_path)
    monkeypatch.setattr(tiny, "recipe", lambda: "other")
    tiny.ensure_tiny(tmp_path)
    assert len(calls) == 2


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGECLOUD_IMAGE_CACHE", "/srv/tiny")
    assert tiny.cache_dir() == Path("/srv/tiny")
    monkeypatch.delenv("EDGECLOUD_IMAGE_CACHE")
    assert tiny.cache_dir() == Path("/var/cache/edgecloud/tiny")


def test_cli_image_build_tiny_prints_the_paths_without_a_front_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tiny, "_build", _fake_build([]))
    monkeypatch.setenv("EDGECLOUD_URL", "http://192.0.2.1:9")  # never contacted
    result = run("image", "build", "tiny", "--cache", str(tmp_path), "-o", "json")
    assert result.exit_code == 0, result.output
    paths = json.loads(result.output)
    assert Path(paths["kernel"]).read_bytes() == b"kernel"
    assert paths["marker"] == "EDGECLOUD-READY" and paths["cmdline"] == tiny.CMDLINE
    table = run("image", "build", "tiny", "--cache", str(tmp_path))
    assert table.exit_code == 0 and f"initrd:          {paths['initrd']}" in table.output
