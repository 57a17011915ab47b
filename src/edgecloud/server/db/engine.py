"""Engines and sessions: SQLite (WAL, writers serialised by BEGIN IMMEDIATE) or PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("edgecloud.server.db")


def _sqlite_engine(url: str, *, begin: str, pool_size: int) -> Engine:
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite would defer it).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


@dataclass(frozen=True)
class Store:
    """The state store: a session factory for reads and one for writes."""

    url: str
    reader: sessionmaker[Session]
    writer: sessionmaker[Session]
    engines: tuple[Engine, ...]

    @property
    def dialect(self) -> str:
        """Return "sqlite" or "postgresql"."""
        return self.engines[0].dialect.name

    @contextmanager
    def read(self) -> Iterator[Session]:
        """Open a read-only unit of work (rolled back at the end)."""
        with self.reader() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """Open a unit of work that commits on success and rolls back on error.

        Callables a use case appends to ``session.info["after_commit"]`` run once the
        commit succeeded (e.g. removing an image's file only once its row is gone).
        """
        with self.writer() as session:
            with session.begin():
                yield session
            for action in session.info.pop("after_commit", ()):
                try:
                    action()
                except Exception:
                    log.exception("after commit")

    def dispose(self) -> None:
        """Close every pooled connection."""
        for engine in self.engines:
            engine.dispose()


def open_store(url: str, *, pool_size: int = 16) -> Store:
    """Connect to the store at `url` (does not migrate; see migrate.upgrade)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        read_engine = _sqlite_engine(url, begin="BEGIN", pool_size=pool_size)
        write_engine = _sqlite_engine(url, begin="BEGIN IMMEDIATE", pool_size=pool_size)
        engines: tuple[Engine, ...] = (read_engine, write_engine)
    else:
        engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        read_engine = write_engine = engine
        engines = (engine,)
    opts: dict[str, Any] = {"expire_on_commit": False}
    return Store(
        url=url,
        reader=sessionmaker(read_engine, **opts),
        writer=sessionmaker(write_engine, **opts),
        engines=engines,
    )
