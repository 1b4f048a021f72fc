"""The shared stores of `scripts/cluster.sh`: PostgreSQL databases and Redis.

    cluster_stores.py prepare --db URL [--db URL ...] --redis URL --prefix P --endpoints FILE
        Redis answers PING; each PostgreSQL database exists (created when missing) and the first
        one has Rasa's tracker table (created once here, so replicas that start together do not
        race to create it). Writes FILE: endpoints.replicas.yml with the lock store on the URL's
        Redis db and under key prefix P. Prints the variables endpoints.replicas.yml reads for
        Redis as shell assignments (REDIS_HOST, REDIS_PORT, REDIS_PASSWORD).
    cluster_stores.py drop --db URL
        Drop the database (tests: a fresh database per run).

Exit status 1 with a message on stderr when a store cannot be reached.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
REPLICAS = Path(__file__).resolve().parents[1] / "endpoints.replicas.yml"


class StoreError(RuntimeError):
    """A store is unreachable or a URL is not usable."""


def redis_settings(url: str) -> dict[str, str]:
    """Host, port, db number and password of a redis:// URL (the lock store takes them apart:
    REDIS_DB goes into the endpoints file, the others are read from the environment)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise StoreError(f"not a redis:// URL: {url}")
    path = parts.path.strip("/") or "0"
    if not path.isdigit():
        raise StoreError(f"the Redis db must be a number: {url}")
    return {"REDIS_HOST": parts.hostname or "127.0.0.1", "REDIS_PORT": str(parts.port or 6379),
            "REDIS_DB": path, "REDIS_PASSWORD": unquote(parts.password or "")}


def ping_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        raise StoreError(f"Redis {redact(url)} does not answer: {exc}") from exc


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    if url.startswith("redis"):
        parts = urlsplit(url)
        return url.replace(f":{parts.password}@", ":***@") if parts.password else url
    return make_url(url).render_as_string(hide_password=True)


def _server_and_name(url: str) -> tuple[object, str]:
    """(an engine on the server's `postgres` database, the database name of `url`)."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        raise StoreError(f"not a postgresql:// URL: {redact(url)}")
    if not parsed.database:
        raise StoreError(f"the URL names no database: {redact(url)}")
    server = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT", future=True)
    return server, parsed.database


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def ensure_database(url: str) -> bool:
    """Create the database of `url` when it is missing; True when it was created."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError, ProgrammingError

    server, name = _server_and_name(url)
    try:
        with server.connect() as conn:
            if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
                return False
            conn.execute(text(f"CREATE DATABASE {_quoted(name)}"))
            return True
    except (OperationalError, ProgrammingError) as exc:
        raise StoreError(f"PostgreSQL {redact(url)}: {exc.orig}") from exc
    finally:
        server.dispose()


def drop_database(url: str) -> None:
    """Drop the database of `url` (its open connections are ended); nothing when it is missing."""
    from sqlalchemy import text

    server, name = _server_and_name(url)
    try:
        with server.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)"))
    finally:
        server.dispose()


def create_tracker_tables(url: str) -> None:
    """Rasa's SQL tracker store tables, created as Rasa creates them (its own metadata)."""
    from rasa.core.tracker_store import SQLTrackerStore
    from sqlalchemy import create_engine

    engine = create_engine(url, future=True)
    try:
        SQLTrackerStore.Base.metadata.create_all(engine)
    finally:
        engine.dispose()


def cluster_endpoints(db: int, prefix: str, source: Path = REPLICAS) -> str:
    """endpoints.replicas.yml with the lock store on Redis db `db`, its keys under `prefix` (letters
    and digits: Rasa ignores any other prefix). The ${...} values stay for Rasa to expand."""
    import yaml

    if not prefix.isalnum():
        raise StoreError(f"the key prefix must be letters and digits: {prefix!r}")
    doc = yaml.safe_load(source.read_text(encoding="utf-8"))
    doc["lock_store"].update({"db": db, "key_prefix": prefix})
    return (f"# written by scripts/cluster.sh from {source.name}: the lock store's db and key prefix\n"
            + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def prepare(databases: list[str], redis_url: str, prefix: str, endpoints: Path) -> dict[str, str]:
    """Check Redis, create the databases and the tracker table, write the endpoints file; the
    Redis variables of endpoints.replicas.yml."""
    settings = redis_settings(redis_url)
    text = cluster_endpoints(int(settings.pop("REDIS_DB")), prefix)
    ping_redis(redis_url)
    for url in dict.fromkeys(databases):
        if ensure_database(url):
            print(f"created database {redact(url)}", file=sys.stderr)
    create_tracker_tables(databases[0])
    endpoints.parent.mkdir(parents=True, exist_ok=True)
    endpoints.write_text(text, encoding="utf-8")
    return settings


def run(args: argparse.Namespace) -> None:
    if args.command == "prepare":
        for name, value in prepare(args.db, args.redis, args.prefix, Path(args.endpoints)).items():
            print(f"{name}={shlex.quote(value)}")
    else:
        for url in args.db:
            drop_database(url)


def main(argv: list[str] | None = None) -> int:
    import redis
    from sqlalchemy.exc import SQLAlchemyError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("prepare", "drop"))
    parser.add_argument("--db", action="append", default=[], help="SQLAlchemy URL (the first: tracker store)")
    parser.add_argument("--redis", default="", help="redis:// URL")
    parser.add_argument("--prefix", default="", help="the lock store's key prefix (prepare)")
    parser.add_argument("--endpoints", default="", help="the endpoints file to write (prepare)")
    args = parser.parse_args(argv)
    if not args.db or (args.command == "prepare" and not (args.redis and args.prefix and args.endpoints)):
        parser.error("prepare needs --db, --redis, --prefix and --endpoints; drop needs --db")
    try:
        run(args)
    except (StoreError, SQLAlchemyError, redis.RedisError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
