"""Copies images into their datastore in the background: from a file, a URL or a clone.

An image registered with something to copy is LOCKED until its bytes are stored, then
READY, or ERROR with `last_error` saying why (nothing half-copied is kept). The importer
finds its work in the store (images LOCKED with an origin other than "upload"), so an
import cut short by a restart is simply done again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import select

from edgecloud.server.datastore.files import (
    CHUNK,
    ImageFileError,
    NoSpace,
    Stored,
    copy_file,
    datastore_dir,
    free_bytes,
    remove,
    store,
)
from edgecloud.server.db.engine import Store
from edgecloud.server.db.models import Datastore, Image

log = logging.getLogger("edgecloud.server.importer")

LOCKED, READY, ERROR = 4, 1, 5
URL_TIMEOUT = 30.0  # seconds without a byte before a download is given up
_wake = threading.Event()


def wake() -> None:
    """Tell the importer there is new work (called after an import is registered)."""
    _wake.set()


def target_of(home: Path, ds: Datastore, image_id: int) -> Path:
    """Return where an image of datastore `ds` is stored."""
    return datastore_dir(home, ds.id, dict(ds.template)) / str(image_id)


def finish(store_: Store, image_id: int, stored: Stored | None, error: str = "") -> None:
    """Record the outcome of an import (or upload) on the image row."""
    with store_.write() as session:
        image = session.get(Image, image_id)
        if image is None:  # deleted while copying: drop the bytes
            if stored is not None:
                remove(str(stored.path))
            return
        if stored is None:
            image.state, image.last_error = ERROR, error
            log.warning("image %s: %s", image_id, error)
            return
        image.state, image.last_error = READY, ""
        image.source, image.format = str(stored.path), stored.format
        image.bytes, image.checksum = stored.bytes, stored.checksum
        image.size_mb = max(image.size_mb, stored.virtual_mb)


class Importer:
    """A small pool of threads copying images; `start` / `stop` with the front-end."""

    def __init__(self, store_: Store, home: Path, *, workers: int = 2, interval: float = 5.0):
        """Copy into datastores under `home`, at most `workers` images at once."""
        self.store = store_
        self.home = home
        self.interval = interval
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="edgecloud-import")
        self._busy: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start looking for work."""
        self._thread = threading.Thread(target=self._loop, name="edgecloud-importer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop taking work; wait for the copies running now."""
        self._stop.set()
        _wake.set()
        if self._thread is not None:
            self._thread.join(10)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def run_once(self) -> None:
        """Start every pending import not already running."""
        with self.store.read() as session:
            rows = session.execute(
                select(Image.id).where(
                    Image.state == LOCKED,
                    Image.origin != "upload",
                    Image.origin.not_like("vm:%"),  # a save-as: its request copies it
                )
            ).all()
        for (image_id,) in rows:
            with self._lock:
                if image_id in self._busy:
                    continue
                self._busy.add(image_id)
            self._pool.submit(self._import, image_id)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("looking for images to import")
            _wake.wait(self.interval)
            _wake.clear()

    def _import(self, image_id: int) -> None:
        try:
            with self.store.read() as session:
                image = session.get(Image, image_id)
                if image is None or image.state != LOCKED:
                    return
                ds = session.get(Datastore, image.datastore_id)
                assert ds is not None
                target = target_of(self.home, ds, image_id)
                origin, declared, expected = image.origin, image.format, image.checksum
                clone_of = _clone_source(session, origin)
            try:
                stored = self._copy(origin, target, declared, expected, clone_of)
            except (ImageFileError, OSError, httpx.HTTPError) as exc:
                finish(self.store, image_id, None, _why(exc))
                return
            finish(self.store, image_id, stored)
            log.info("image %s stored: %s, %s bytes", image_id, stored.format, stored.bytes)
        except Exception:
            log.exception("importing image %s", image_id)
        finally:
            with self._lock:
                self._busy.discard(image_id)

    def _copy(
        self, origin: str, target: Path, declared: str, expected: str, clone_of: str
    ) -> Stored:
        kind, _, where = origin.partition(":")
        if kind == "file":
            return copy_file(Path(where), target, declared=declared, expected=expected)
        if kind == "image":
            if not clone_of:
                raise ImageFileError(f"the image to clone ({where}) has no stored bytes")
            return copy_file(Path(clone_of), target, declared=declared, expected=expected)
        if kind in ("http", "https"):
            return download(origin, target, declared=declared, expected=expected)
        raise ImageFileError(f"cannot import from {origin[:80]!r}")


def _clone_source(session: object, origin: str) -> str:
    kind, _, where = origin.partition(":")
    if kind != "image" or not where.isdigit():
        return ""
    source = session.get(Image, int(where))  # type: ignore[attr-defined]
    return str(source.source) if source is not None else ""


def _why(exc: BaseException) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"download failed: HTTP {exc.response.status_code} from {exc.request.url}"
    if isinstance(exc, httpx.HTTPError):
        return f"download failed: {type(exc).__name__}: {exc}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    return str(exc)


def download(url: str, target: Path, *, declared: str, expected: str) -> Stored:
    """Download `url` (http or https) into `target`, checking size against free space."""
    target.parent.mkdir(parents=True, exist_ok=True)
    timeout = httpx.Timeout(URL_TIMEOUT)
    with (
        httpx.Client(timeout=timeout, follow_redirects=True) as client,
        client.stream("GET", url) as response,
    ):
        response.raise_for_status()
        declared_length = response.headers.get("content-length", "")
        room = free_bytes(target.parent)
        if declared_length.isdigit() and int(declared_length) > room:
            raise NoSpace(
                f"datastore full: the download is {int(declared_length) // 2**20} MiB"
                f" and only {room // 2**20} MiB are free in {target.parent}"
            )
        chunks: Iterator[bytes] = response.iter_bytes(CHUNK)
        return store(chunks, target, declared=declared, expected=expected)
