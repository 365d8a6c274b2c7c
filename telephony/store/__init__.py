"""Storage: PostgreSQL through SQLAlchemy 2 async + asyncpg, Alembic migrations, embedded server.

Nothing of ours is imported here but plain data types; the domain reaches the
database only through the repositories and the write buffer.
"""
