"""The default "tiny" images: a Debian cloud kernel, a busybox initramfs, a busybox rootfs.

Everything comes from Debian packages (`apt-get download` + `dpkg-deb -x`). The result
is cached: `<cache>/current` points at the one complete build, whose manifest.json is
written last; a build happens in a temporary directory under the cache and is swapped in
by renaming, under a file lock, so a crash never leaves half a cache behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edgecloud.images import guest_files
from edgecloud.images.cpio import CpioWriter
from edgecloud.images.kmods import load_order, parse_builtin, parse_modules_dep

RECIPE = 1  # bump when the build logic changes; guest files and settings are hashed in
KERNEL_META_PACKAGE = "linux-image-cloud-amd64"
BUSYBOX_PACKAGE = "busybox-static"
DEFAULT_CACHE = Path("/var/cache/edgecloud/tiny")
CMDLINE = "console=ttyS0 panic=-1"
# microvm: the serial console shows output only with earlyprintk; there is no reset
# register (reboot by triple fault); with neither HPET nor PM timer the TSC is the only
# clocksource, so keep the watchdog from dropping it (to jiffies) on a busy TCG host.
# Under TCG the host's TSC rate must be added as tsc_early_khz= where QEMU runs (the node
# does, see node/qemu_argv.py), or a failed PIT calibration hangs the boot.
MICROVM_CMDLINE = "earlyprintk=ttyS0 console=ttyS0 panic=-1 tsc=reliable reboot=t"
# Loaded in the VM (with their dependencies). Disks, NICs and the console over virtio
# (PCI for `pc`, MMIO for `microvm`), IDE CD-ROMs for context ISOs, the power button.
REQUIRED_MODULES = (
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "ata_piix",
    "sr_mod",
    "cdrom",
    "isofs",
    "evdev",
    "button",
)
OPTIONAL_MODULES = ("virtio_mmio", "virtio_console", "sd_mod", "af_packet")


@dataclass(frozen=True)
class Tiny:
    """Paths and kernel command lines of one build of the tiny images."""

    kernel: Path
    initrd: Path
    rootfs: Path
    cmdline: str
    microvm_cmdline: str
    marker: str = guest_files.MARKER


class ImageBuildError(RuntimeError):
    """A package could not be fetched or unpacked, or its content was not as expected."""


def cache_dir() -> Path:
    """Return the cache of the tiny images: $EDGECLOUD_IMAGE_CACHE or /var/cache/edgecloud/tiny."""
    env = os.environ.get("EDGECLOUD_IMAGE_CACHE")
    return Path(env) if env else DEFAULT_CACHE


def ensure_tiny(cache: Path | None = None, *, rebuild: bool = False) -> Tiny:
    """Return the cached tiny images, building them first if missing (or if rebuild)."""
    root = cache if cache is not None else cache_dir()
    if not rebuild and (found := _load(root)) is not None:
        return found
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / ".lock"):
        if not rebuild and (found := _load(root)) is not None:
            return found  # another caller built it while we waited
        previous = _current_name(root)
        _remove_stale(root, keep={previous})
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
        tmp.chmod(0o755)  # readable by QEMU and LXC running as other users
        try:
            _build(tmp)
            final = root / f"build-{time.time_ns()}"
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _point_current(root, final.name)
        # The build before stays: a caller may have just been handed its paths.
        _remove_stale(root, keep={final.name, previous})
    built = _load(root)
    if built is None:
        raise ImageBuildError(f"{root}: build finished but its manifest is unreadable")
    return built


def recipe() -> str:
    """Return the identity of what a build produces: a cache of another recipe is rebuilt."""
    inputs = [
        guest_files.VM_FILES,
        guest_files.CT_FILES,
        guest_files.DIRS,
        REQUIRED_MODULES,
        OPTIONAL_MODULES,
        CMDLINE,
        MICROVM_CMDLINE,
    ]
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
    return f"{RECIPE}-{digest[:12]}"


def _load(root: Path) -> Tiny | None:
    """Return the build `current` points at, if complete and of this recipe."""
    try:
        build = (root / "current").resolve(strict=True)
        manifest = json.loads((build / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("recipe") != recipe():
        return None
    tiny = Tiny(
        kernel=build / "vmlinuz",
        initrd=build / "initrd.img",
        rootfs=build / "rootfs",
        cmdline=str(manifest["cmdline"]),
        microvm_cmdline=str(manifest["microvm_cmdline"]),
        marker=str(manifest["marker"]),
    )
    if not (tiny.kernel.is_file() and tiny.initrd.is_file() and tiny.rootfs.is_dir()):
        return None
    return tiny


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def _point_current(root: Path, name: str) -> None:
    link = root / f".current-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    link.symlink_to(name)
    link.replace(root / "current")  # atomic: readers see the old build or the new one


def _current_name(root: Path) -> str:
    try:
        return os.readlink(root / "current")
    except OSError:
        return ""


def _remove_stale(root: Path, keep: set[str]) -> None:
    """Delete the leftovers of crashed builds, and the builds not named in keep."""
    for entry in root.iterdir():
        old_build = entry.name.startswith("build-") and entry.name not in keep
        if entry.name.startswith(".current-"):  # a symlink a crash left behind
            entry.unlink(missing_ok=True)
        elif old_build or entry.name.startswith(".build-"):
            shutil.rmtree(entry, ignore_errors=True)


def _run(argv: list[str], *, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ImageBuildError(f"cannot run {argv[0]}: {exc}") from exc
    if done.returncode != 0:
        raise ImageBuildError(f"{' '.join(argv)} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def _download(into: Path, packages: list[str]) -> list[Path]:
    """Fetch .deb files with apt-get download (refreshing apt's lists once if needed)."""
    # apt drops privileges to _apt for downloads, which cannot write into our temp dir.
    argv = ["apt-get", "-q", "-o", "APT::Sandbox::User=root", "download", *packages]
    try:
        _run(argv, cwd=into)
    except ImageBuildError:
        _run(["apt-get", "-q", "update"])
        _run(argv, cwd=into)
    debs = []
    for package in packages:
        found = sorted(into.glob(f"{package}_*.deb"))
        if not found:
            raise ImageBuildError(f"apt-get download {package}: no .deb appeared in {into}")
        debs.append(found[-1])
    return debs


def _deb_field(deb: Path, name: str) -> str:
    return _run(["dpkg-deb", "-f", str(deb), name]).strip()


def _kernel_package(meta_deb: Path) -> str:
    """Return the versioned image package a meta-package depends on."""
    for alternative in _deb_field(meta_deb, "Depends").replace("|", ",").split(","):
        name = alternative.split("(")[0].strip()
        if name.startswith("linux-image-"):
            return name
    raise ImageBuildError(f"{meta_deb.name}: no linux-image-* dependency")


def _build(out: Path) -> None:
    work = out / "work"
    work.mkdir()
    (meta,) = _download(work, [KERNEL_META_PACKAGE])
    kernel_package = _kernel_package(meta)
    kernel_deb, busybox_deb = _download(work, [kernel_package, BUSYBOX_PACKAGE])
    _run(["dpkg-deb", "-x", str(kernel_deb), str(work / "kernel")])
    _run(["dpkg-deb", "-x", str(busybox_deb), str(work / "busybox")])
    busybox = work / "busybox" / "bin" / "busybox"
    applets = _run([str(busybox), "--list-full"]).split()
    modules_dir, version = _modules_dir(work / "kernel")
    shutil.copyfile(work / "kernel" / "boot" / f"vmlinuz-{version}", out / "vmlinuz")
    modules = _vm_modules(modules_dir, busybox)
    initrd = _initramfs(busybox.read_bytes(), applets, modules_dir, modules, version)
    (out / "initrd.img").write_bytes(initrd)
    _container_rootfs(out / "rootfs", busybox, applets)
    manifest = {
        "recipe": recipe(),
        "kernel_package": kernel_package,
        "kernel_version": version,
        "kernel_package_version": _deb_field(kernel_deb, "Version"),
        "busybox_version": _deb_field(busybox_deb, "Version"),
        "modules": modules,
        "cmdline": CMDLINE,
        "microvm_cmdline": MICROVM_CMDLINE,
        "marker": guest_files.MARKER,
        "built_at": time.time(),
    }
    shutil.rmtree(work)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _modules_dir(kernel_tree: Path) -> tuple[Path, str]:
    """Return (<tree>/lib/modules/VERSION, VERSION) of an unpacked kernel package."""
    for base in (kernel_tree / "lib" / "modules", kernel_tree / "usr" / "lib" / "modules"):
        versions = sorted(p for p in base.glob("*") if p.is_dir()) if base.is_dir() else []
        if len(versions) == 1:
            return versions[0], versions[0].name
    raise ImageBuildError(f"{kernel_tree}: expected one lib/modules/VERSION directory")


def _vm_modules(modules_dir: Path, busybox: Path) -> list[str]:
    """Return the module paths (relative to modules_dir) the VM loads, in load order."""
    dep_file = modules_dir / "modules.dep"
    if not dep_file.exists():  # Debian ships no modules.dep: its postinst runs depmod
        depmod = shutil.which("depmod") or shutil.which("depmod", path="/usr/sbin:/sbin")
        base = modules_dir.parent.parent.parent  # depmod reads BASE/lib/modules/VERSION
        argv = [depmod] if depmod else [str(busybox), "depmod"]
        _run([*argv, "-b", str(base), modules_dir.name])
    builtin_file = modules_dir / "modules.builtin"
    builtin = parse_builtin(builtin_file.read_text()) if builtin_file.exists() else set()
    return load_order(
        parse_modules_dep(dep_file.read_text()),
        [*REQUIRED_MODULES, *OPTIONAL_MODULES],
        builtin=builtin,
        optional=OPTIONAL_MODULES,
    )


def _initramfs(
    busybox: bytes, applets: list[str], modules_dir: Path, modules: list[str], version: str
) -> bytes:
    cpio = CpioWriter(mtime=int(time.time()))
    for directory in guest_files.DIRS:
        cpio.add_dir(directory)
    cpio.add_dir("dev/input")
    cpio.add_char_device("dev/console", 5, 1)
    cpio.add_char_device("dev/null", 1, 3, perm=0o666)
    cpio.add_symlink("var/run", "../run")
    cpio.add_file("bin/busybox", busybox, perm=0o755)
    for applet in applets:
        if applet != "bin/busybox":
            cpio.add_symlink(applet, "/bin/busybox")
    for name, (text, perm) in guest_files.VM_FILES.items():
        cpio.add_parents(name)
        cpio.add_file(name, text.encode(), perm=perm)
    target = f"lib/modules/{version}"
    for module in modules:
        cpio.add_parents(f"{target}/{module}")
        cpio.add_file(f"{target}/{module}", (modules_dir / module).read_bytes())
    listing = "".join(f"/{target}/{module}\n" for module in modules)
    cpio.add_file(guest_files.MODULE_LIST, listing.encode())
    return cpio.gzipped(level=9)


def _container_rootfs(rootfs: Path, busybox: Path, applets: list[str]) -> None:
    rootfs.mkdir()
    for directory in guest_files.DIRS:
        (rootfs / directory).mkdir(parents=True, exist_ok=True)
    (rootfs / "tmp").chmod(0o1777)
    (rootfs / "root").chmod(0o700)
    (rootfs / "var" / "run").symlink_to("../run")
    shutil.copyfile(busybox, rootfs / "bin" / "busybox")
    (rootfs / "bin" / "busybox").chmod(0o755)
    for applet in applets:
        if applet != "bin/busybox":
            path = rootfs / applet
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to("/bin/busybox")
    for name, (text, perm) in guest_files.CT_FILES.items():
        path = rootfs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(perm)
