"""Pick kernel modules for an initramfs and order them so each loads after its dependencies."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath

ModuleDeps = Mapping[str, tuple[str, ...]]


def module_name(path: str) -> str:
    """Return the module name of a path in modules.dep ('kernel/x/virtio-pci.ko.xz' -> ...)."""
    base = PurePosixPath(path).name
    base = base.split(".ko", 1)[0]
    return base.replace("-", "_")


def parse_modules_dep(text: str) -> dict[str, tuple[str, ...]]:
    """Parse modules.dep ("path: dep dep ...") into {path: (dep paths, ...)}."""
    deps: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        path, sep, rest = line.partition(":")
        if not sep:
            raise ValueError(f"modules.dep: no ':' in {line!r}")
        deps[path.strip()] = tuple(rest.split())
    return deps


def parse_builtin(text: str) -> set[str]:
    """Return the names of the modules in modules.builtin (built into the kernel image)."""
    return {module_name(line.strip()) for line in text.splitlines() if line.strip()}


class MissingModule(LookupError):
    """A required module is neither loadable nor built in."""


def load_order(
    deps: ModuleDeps,
    wanted: Iterable[str],
    *,
    builtin: Iterable[str] = (),
    optional: Iterable[str] = (),
) -> list[str]:
    """Return the paths to insmod for the wanted module names, dependencies first.

    Names built into the kernel are skipped; an unknown name in `optional` is skipped,
    an unknown required one raises MissingModule. Each path appears once.
    """
    by_name = {module_name(path): path for path in deps}
    skip = {name.replace("-", "_") for name in builtin}
    maybe = {name.replace("-", "_") for name in optional}
    order: list[str] = []
    done: set[str] = set()
    visiting: set[str] = set()

    def visit(path: str) -> None:
        if path in done:
            return
        if path in visiting:
            raise ValueError(f"modules.dep: dependency cycle through {path}")
        visiting.add(path)
        for dep in deps.get(path, ()):
            visit(dep)
        visiting.discard(path)
        done.add(path)
        order.append(path)

    for raw in wanted:
        name = raw.replace("-", "_")
        if name in by_name:
            visit(by_name[name])
        elif name not in skip and name not in maybe:
            raise MissingModule(f"kernel module {name!r} is neither a module nor built in")
    return order
