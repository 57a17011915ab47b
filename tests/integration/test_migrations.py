"""The alembic migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from edgecloud.server.db.migrate import upgrade
from edgecloud.server.db.models import Base


def test_migrations_match_models(db_url: str, tmp_path: object) -> None:
    url = db_url or f"sqlite:///{tmp_path}/schema.db"
    engine = create_engine(url)
    try:
        upgrade(engine)
        upgrade(engine)  # a second run is a no-op
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert diff == []
    finally:
        engine.dispose()
