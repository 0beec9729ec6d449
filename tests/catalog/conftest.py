"""Fixtures of the catalog tests: a PostgreSQL database of the test's own on the shared server."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from tests.catalog.helpers import PG_ADMIN


def _new_database() -> tuple[str, str]:
    name = f"tcat_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=10) as c:
        c.execute(f"CREATE DATABASE {name}")
    return name, PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def _drop(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=10) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def pg_url():
    """The URL of a fresh, empty database (dropped afterwards)."""
    name, url = _new_database()
    yield url
    _drop(name)


@pytest.fixture
def pg_url2():
    """A second fresh database, for comparing what two schemas look like."""
    name, url = _new_database()
    yield url
    _drop(name)
