"""Real PostgreSQL for the recording tests (the storage tests' fixtures)."""

from tests.store.conftest import Database, database, embedded_server, engine  # noqa: F401
