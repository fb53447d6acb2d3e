"""`python -m exchange_site.services_check`: are MariaDB and Redis up? Creates the database if missing.

Run by the Makefile before anything touches the services, so a newcomer gets one clear message
instead of a stack trace. Reads the same environment as the settings, without starting Django.
"""

import sys

import MySQLdb
import redis

from exchange_site.settings import DATABASES, REDIS_URL

START_HINT = {
    "MariaDB": "start it with: start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd "
    "(or `docker compose up -d mariadb` where Docker runs)",
    "Redis": "start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no "
    "(or `docker compose up -d redis` where Docker runs)",
}


def server_connect(db: dict, **kwargs) -> MySQLdb.Connection:
    """A plain connection to the MariaDB server of a DATABASES entry (no database unless given)."""
    return MySQLdb.connect(
        host=db["HOST"] or "127.0.0.1", port=int(db["PORT"] or 3306), user=db["USER"], password=db["PASSWORD"], **kwargs
    )


def database_create(db: dict, name: str) -> None:
    conn = server_connect(db, connect_timeout=3)
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    finally:
        conn.close()


def main() -> int:
    db = DATABASES["default"]
    failures = []
    try:
        database_create(db, db["NAME"])
        print(f"MariaDB answers at {db['HOST']}:{db['PORT']}; database {db['NAME']} is there.")
    except MySQLdb.Error as exc:
        failures.append(("MariaDB", f"{db['HOST']}:{db['PORT']}", exc))
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
        print(f"Redis answers at {REDIS_URL}.")
    except redis.RedisError as exc:
        failures.append(("Redis", REDIS_URL, exc))
    for name, where, exc in failures:
        print(f"ERROR: {name} does not answer at {where} ({exc}).\n  {START_HINT[name]}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
