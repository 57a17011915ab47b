"""Building the node zipapp (this runs on the front-end; standard library only).

The zipapp holds edgecloud/node/**/*.py (not this file), the installed `qemu.qmp` package
and a `__main__.py` that runs `edgecloud.node.__main__.main`. Its version is the SHA-256
of that content (names and bytes, sorted), so the same code always has the same version;
the build adds it as `edgecloud/node/_version.py`. Entries carry a fixed timestamp and
mode, so the archive bytes are reproducible too (for a given zlib and Python).

Every module also ships compiled (`name.pyc` beside `name.py`, unchecked-hash pycs of the
front-end's Python): zipimport never writes a cache, so without them each node action
compiled its modules again (~30 ms of its ~50). A host whose Python has another bytecode
magic number ignores them and compiles the sources.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import py_compile
import tempfile
import zipfile
from pathlib import Path

NODE_DIR = Path(__file__).resolve().parent
EXCLUDED = {"build.py", "_version.py"}
QMP_EXCLUDED = {"qmp_tui.py"}  # needs urwid; nothing here uses it
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
SHEBANG = b"#!/usr/bin/env python3\n"
MAIN = b"""import sys

from edgecloud.node.__main__ import main

sys.exit(main())
"""
PACKAGE_INIT = b'"""edgecloud: only the node code ships to hosts."""\n'


def _qmp_dir() -> Path:
    found = importlib.util.find_spec("qemu.qmp")
    if found is None or found.origin is None:
        raise RuntimeError("the qemu.qmp package is not installed")
    return Path(found.origin).parent


def _content() -> dict[str, bytes]:
    """Return the zipapp's files (without _version.py), by archive name."""
    files = {"__main__.py": MAIN, "edgecloud/__init__.py": PACKAGE_INIT}
    for path in sorted(NODE_DIR.rglob("*.py")):
        relative = path.relative_to(NODE_DIR).as_posix()
        if relative not in EXCLUDED:
            files[f"edgecloud/node/{relative}"] = path.read_bytes()
    files["qemu/__init__.py"] = b""  # a regular package: zipimport and namespaces disagree
    for path in sorted(_qmp_dir().iterdir()):
        if path.suffix == ".py" and path.name not in QMP_EXCLUDED:
            files[f"qemu/qmp/{path.name}"] = path.read_bytes()
    return files


def _digest(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


@functools.cache
def node_version() -> str:
    """Return the version of the node code in this checkout (computed once)."""
    return _digest(_content())


def _compiled(files: dict[str, bytes]) -> dict[str, bytes]:
    """Return an unchecked-hash .pyc for every .py (except the zipapp's own __main__)."""
    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="ec-node-pyc-") as tmp:
        for name, source in files.items():
            if not name.endswith(".py") or name == "__main__.py":
                continue
            src = Path(tmp) / "module.py"
            src.write_bytes(source)
            target = Path(tmp) / "module.pyc"
            py_compile.compile(
                str(src),
                cfile=str(target),
                dfile=name,
                doraise=True,
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            )
            out[name + "c"] = target.read_bytes()
    return out


def build_zipapp(dest: Path) -> str:
    """Write the zipapp to `dest` (atomically) and return its version."""
    files = _content()
    version = _digest(files)
    files["edgecloud/node/_version.py"] = f'VERSION = "{version}"\n'.encode()
    files.update(_compiled(files))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as raw:
            raw.write(SHEBANG)
            with zipfile.ZipFile(raw, "w") as archive:
                for name in sorted(files):
                    entry = zipfile.ZipInfo(name, date_time=FIXED_TIME)
                    entry.external_attr = 0o644 << 16
                    entry.compress_type = zipfile.ZIP_DEFLATED
                    archive.writestr(entry, files[name], compresslevel=9)
        tmp.chmod(0o755)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return version
