"""The Alembic environment and revisions of the PostgreSQL schema (see ``migrate.py``)."""
