"""Database: SQLAlchemy 2 models, engine per process, Alembic migrations."""
