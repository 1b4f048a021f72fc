"""Staff accounts, sessions and login lock-out for the admin page (/admin).

Three tables live in the knowledge database (`make_engine(database_url())`) but
in their own MetaData, so rebuilding the knowledge tables never touches them:

- `admin_users`: one row per staff account; the password is stored only as a
  scrypt hash with a per-user random salt (`scrypt$n$r$p$salt$hash`);
- `admin_sessions`: server-side sessions; the browser holds a random token, the
  table holds only its SHA-256, the user, the per-session CSRF token and the
  expiry time;
- `admin_login_failures`: two rows per failed login, one keyed by the pair
  (client address, user name) and one by the address alone. The lock-out is
  per pair, so someone guessing a staff member's password locks out only
  themselves: 5 failures of one pair lock that pair for 15 minutes, and each
  further failure doubles the wait (30 min, 1 h, ... at most 24 h); failures are
  remembered for 24 hours, a successful login forgets its pair's. Password
  spraying over many names from one address is slowed down, not locked out: from
  20 failures of an address within an hour on, that address waits a growing
  delay after each failure (2 s, 4 s, ... at most 60 s) before its next attempt,
  whatever the name. A whole office behind one NAT address is never locked out of
  its accounts by one person's typing or guessing; it waits a minute at most.
  `unlock()` (CLI: `bot unlock`) clears a name or an address at once.

Times are stored as Unix seconds (float) so SQLite and PostgreSQL behave alike.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Engine

from bot.knowledge.store import database_url, make_engine

# scrypt at N=2^15, r=8, p=1 (about 32 MiB, tens of milliseconds per hash).
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_MAXMEM = 64 * 1024 * 1024
SALT_BYTES = 16
HASH_BYTES = 32

SESSION_SECONDS = 8 * 3600
MAX_FAILURES = 5  # failures of one (address, user) pair before its first lock
LOCK_SECONDS = 15 * 60  # the first lock; every further failure doubles it
MAX_LOCK_SECONDS = 24 * 3600
FAILURE_MEMORY = 24 * 3600  # failures older than this are forgotten
ADDRESS_MAX_FAILURES = 20  # failures from one address, whatever the user name ...
ADDRESS_WINDOW = 3600  # ... within this many seconds start the address's throttle:
THROTTLE_SECONDS = 2  # the first wait after a failure; every further failure doubles it ...
MAX_THROTTLE_SECONDS = 60  # ... up to this
MIN_PASSWORD_CHARS = 10
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.\-\u4e00-\u9fff]{2,32}$")

admin_tables = MetaData()

users_table = Table(
    "admin_users", admin_tables,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("password_hash", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
)

sessions_table = Table(
    "admin_sessions", admin_tables,
    Column("token_hash", String(64), primary_key=True),
    Column("user_name", String(64), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

failures_table = Table(
    "admin_login_failures", admin_tables,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(8), nullable=False),      # "pair" (address + name) or "ip"
    Column("key", String(128), nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_admin_login_failures_key", "kind", "key"),
)


class AuthError(ValueError):
    """An account operation was refused; the message is Chinese, for staff."""


@dataclass(frozen=True)
class Session:
    """A logged-in staff member's session."""

    user: str
    csrf: str
    expires_at: float


# ---------------------------------------------------------------- passwords


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    """A scrypt hash of `password` with a fresh random salt, as one string."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                            maxmem=SCRYPT_MAXMEM, dklen=HASH_BYTES)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches the stored hash (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(password.encode("utf-8"), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
                                maxmem=SCRYPT_MAXMEM, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against when the user does not exist, so that a login for an
    unknown name takes as long as one for a known name."""
    return hash_password(secrets.token_urlsafe(16))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_new_password(password: str) -> None:
    """Raise AuthError when a new password is too weak."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise AuthError(f"密码至少需要 {MIN_PASSWORD_CHARS} 个字符")
    if password.strip() != password:
        raise AuthError("密码首尾不能有空格")


def check_name(name: str) -> None:
    """Raise AuthError when a user name is not allowed."""
    if not NAME_PATTERN.match(name):
        raise AuthError("用户名须为 2 到 32 个字符，只能包含汉字、字母、数字、点、下划线或连字符")


# ---------------------------------------------------------------- lock-out rules


@dataclass(frozen=True)
class LockRule:
    """Failures of one kind of key: how many lock, counted over how many seconds."""

    kind: str
    threshold: int
    window: float


PAIR_RULE = LockRule("pair", MAX_FAILURES, FAILURE_MEMORY)  # locks the pair
ADDRESS_RULE = LockRule("ip", ADDRESS_MAX_FAILURES, ADDRESS_WINDOW)  # throttles the address


def lock_seconds(failures: int, threshold: int) -> float:
    """How long `failures` recent failures lock: nothing below `threshold`, then 15 minutes,
    doubled by every further failure, at most 24 hours."""
    if failures < threshold:
        return 0.0
    return float(min(LOCK_SECONDS * 2 ** min(failures - threshold, 16), MAX_LOCK_SECONDS))


def throttle_seconds(failures: int, threshold: int) -> float:
    """How long an address waits after its last failure: nothing below `threshold`, then 2 s,
    doubled by every further failure, at most a minute."""
    if failures < threshold:
        return 0.0
    return float(min(THROTTLE_SECONDS * 2 ** min(failures - threshold, 16), MAX_THROTTLE_SECONDS))


def pair_key(ip: str, name: str) -> str:
    """The failure key of one (address, user name) pair; addresses never contain a space."""
    return f"{ip[:60]} {name}"[:128]


def _names(kind: str, stored: str, key: str) -> bool:
    """Whether the failure row (kind, stored key) belongs to the name or address `key`."""
    if kind != PAIR_RULE.kind:
        return stored == key
    ip, _, name = stored.partition(" ")
    return key in (ip, name)


# ---------------------------------------------------------------- the store


@dataclass(frozen=True)
class LoginResult:
    """The outcome of a login attempt: a session token or a Chinese message."""

    token: str | None
    session: Session | None
    message: str
    locked: bool = False
    attempted: bool = True  # False when refused before checking the password (locked or throttled)
    throttled: bool = False  # the address must wait a little (many failures from it); nothing is locked


class AdminAuth:
    """Accounts, sessions and lock-out on one database; creates its tables on first use."""

    def __init__(self, engine: Engine, clock: object = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self._ready = False
        self._lock = threading.Lock()

    def now(self) -> float:
        """The current time in Unix seconds (injectable for tests)."""
        return float(self.clock())  # type: ignore[operator]

    def ensure_tables(self) -> None:
        """Create the admin tables if they are missing (idempotent)."""
        if self._ready:
            return
        with self._lock:
            if not self._ready:
                with self.engine.begin() as conn:
                    admin_tables.create_all(conn, checkfirst=True)
                self._ready = True

    # ------------------------------------------------------------ accounts

    def user_count(self) -> int:
        """How many staff accounts exist."""
        self.ensure_tables()
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(users_table)).scalar_one())

    def user_names(self) -> list[str]:
        """All staff account names, sorted."""
        self.ensure_tables()
        with self.engine.connect() as conn:
            return list(conn.execute(select(users_table.c.name).order_by(users_table.c.name)).scalars())

    def create_user(self, name: str, password: str) -> None:
        """Add a staff account; AuthError if the name is taken or invalid or the password weak."""
        check_name(name)
        check_new_password(password)
        self.ensure_tables()
        password_hash = hash_password(password)
        with self.engine.begin() as conn:
            exists = conn.execute(select(users_table.c.id).where(users_table.c.name == name)).first()
            if exists:
                raise AuthError(f"用户 {name} 已存在")
            conn.execute(insert(users_table).values(name=name, password_hash=password_hash, created_at=self.now()))

    def set_password(self, name: str, password: str) -> None:
        """Change a password and end all of that user's sessions."""
        check_new_password(password)
        self.ensure_tables()
        password_hash = hash_password(password)
        with self.engine.begin() as conn:
            result = conn.execute(update(users_table).where(users_table.c.name == name)
                                  .values(password_hash=password_hash))
            if result.rowcount == 0:
                raise AuthError(f"用户 {name} 不存在")
            conn.execute(delete(sessions_table).where(sessions_table.c.user_name == name))

    def delete_user(self, name: str) -> bool:
        """Remove an account and its sessions; True if it existed."""
        self.ensure_tables()
        with self.engine.begin() as conn:
            conn.execute(delete(sessions_table).where(sessions_table.c.user_name == name))
            return conn.execute(delete(users_table).where(users_table.c.name == name)).rowcount > 0

    def bootstrap(self, name: str | None, password: str | None) -> bool:
        """Create the first account from the given name/password if no account exists yet."""
        if not name or not password:
            return False
        if self.user_count() > 0:
            return False
        try:
            self.create_user(name, password)
        except AuthError:
            if self.user_count() > 0:  # another process created it meanwhile
                return False
            raise
        return True

    # ------------------------------------------------------------ lock-out

    def _failures(self, conn: object, rule: LockRule, key: str, now: float) -> tuple[int, float]:
        row = conn.execute(  # type: ignore[attr-defined]
            select(func.count(), func.max(failures_table.c.at))
            .where(failures_table.c.kind == rule.kind, failures_table.c.key == key,
                   failures_table.c.at > now - rule.window)
        ).one()
        return int(row[0]), float(row[1] or 0.0)

    def locked_for(self, name: str, ip: str) -> float:
        """Seconds until this address may try this user name again (0 when not locked)."""
        self.ensure_tables()
        now = self.now()
        with self.engine.connect() as conn:
            count, last = self._failures(conn, PAIR_RULE, pair_key(ip, name), now)
        return max(0.0, last + lock_seconds(count, PAIR_RULE.threshold) - now)

    def throttled_for(self, ip: str) -> float:
        """Seconds this address waits before its next login attempt, any name (0 when it need not)."""
        self.ensure_tables()
        now = self.now()
        with self.engine.connect() as conn:
            count, last = self._failures(conn, ADDRESS_RULE, ip[:128], now)
        return max(0.0, last + throttle_seconds(count, ADDRESS_RULE.threshold) - now)

    def _record_failure(self, name: str, ip: str) -> None:
        now = self.now()
        with self.engine.begin() as conn:
            conn.execute(insert(failures_table), [
                {"kind": PAIR_RULE.kind, "key": pair_key(ip, name), "at": now},
                {"kind": ADDRESS_RULE.kind, "key": ip[:128], "at": now},
            ])
            conn.execute(delete(failures_table).where(failures_table.c.at < now - FAILURE_MEMORY))

    def unlock(self, key: str) -> int:
        """Forget the failed logins of a user name (from every address) or of a client address
        (for every name); the number of failure rows removed."""
        self.ensure_tables()
        key = key.strip()
        column = failures_table.c.key
        with self.engine.begin() as conn:
            rows = conn.execute(select(failures_table.c.id, failures_table.c.kind, column).where(or_(
                column == key, column.startswith(key + " ", autoescape=True),
                column.endswith(" " + key, autoescape=True)))).all()
            ids = [row.id for row in rows if _names(row.kind, row.key, key)]
            if ids:
                conn.execute(delete(failures_table).where(failures_table.c.id.in_(ids)))
        return len(ids)

    # ------------------------------------------------------------ login

    def login(self, name: str, password: str, ip: str) -> LoginResult:
        """Check a login; on success a new session, else a Chinese message (never which part was wrong)."""
        self.ensure_tables()
        name = name.strip()
        wait = self.locked_for(name, ip)
        if wait > 0:
            return LoginResult(None, None, _locked_message(wait), locked=True, attempted=False)
        pause = self.throttled_for(ip)
        if pause > 0:
            return LoginResult(None, None, _throttled_message(pause), attempted=False, throttled=True)
        with self.engine.connect() as conn:
            stored = conn.execute(select(users_table.c.password_hash).where(users_table.c.name == name)).scalar()
        ok = verify_password(password, stored or _dummy_hash()) and stored is not None
        if not ok:
            self._record_failure(name, ip)
            wait = self.locked_for(name, ip)
            if wait > 0:
                return LoginResult(None, None, _locked_message(wait), locked=True)
            return LoginResult(None, None, "用户名或密码错误，请重新输入。")
        with self.engine.begin() as conn:
            conn.execute(delete(failures_table).where(failures_table.c.kind == PAIR_RULE.kind,
                                                      failures_table.c.key == pair_key(ip, name)))
        token, session = self.create_session(name)
        return LoginResult(token, session, "")

    # ------------------------------------------------------------ sessions

    def create_session(self, name: str) -> tuple[str, Session]:
        """A new session for `name`: the browser's token and the session."""
        self.ensure_tables()
        token = secrets.token_urlsafe(32)
        now = self.now()
        session = Session(user=name, csrf=secrets.token_urlsafe(32), expires_at=now + SESSION_SECONDS)
        with self.engine.begin() as conn:
            conn.execute(delete(sessions_table).where(sessions_table.c.expires_at < now))
            conn.execute(insert(sessions_table).values(
                token_hash=_token_hash(token), user_name=name, csrf=session.csrf,
                created_at=now, expires_at=session.expires_at))
        return token, session

    def session(self, token: str | None) -> Session | None:
        """The live session for a browser token, or None (unknown, expired, or user removed)."""
        if not token or len(token) > 128:
            return None
        self.ensure_tables()
        with self.engine.connect() as conn:
            row = conn.execute(
                select(sessions_table.c.user_name, sessions_table.c.csrf, sessions_table.c.expires_at)
                .join(users_table, users_table.c.name == sessions_table.c.user_name)
                .where(sessions_table.c.token_hash == _token_hash(token))
            ).first()
        if row is None or row.expires_at <= self.now():
            return None
        return Session(user=row.user_name, csrf=row.csrf, expires_at=row.expires_at)

    def end_session(self, token: str | None) -> None:
        """Log out: forget the session of this token."""
        if not token:
            return
        self.ensure_tables()
        with self.engine.begin() as conn:
            conn.execute(delete(sessions_table).where(sessions_table.c.token_hash == _token_hash(token)))


def _locked_message(seconds: float) -> str:
    minutes = max(1, int((seconds + 59) // 60))
    return (f"登录失败次数过多，账号已被锁定，请 {minutes} 分钟后再试。"
            "锁定只针对您当前的网络地址；如需立即解锁，请联系系统管理员。")


def _throttled_message(seconds: float) -> str:
    return (f"登录尝试过于频繁，请 {max(1, int(seconds + 0.999))} 秒后再试。"
            "账号没有被锁定；同一网络地址短时间内失败次数较多时，每次尝试之间需要稍等。")


_shared: AdminAuth | None = None
_shared_lock = threading.Lock()


def shared_auth() -> AdminAuth:
    """The process-wide AdminAuth on the knowledge database (KEPU_DB_URL or SQLite)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = AdminAuth(make_engine(database_url()))
        return _shared


def bootstrap_from_env(auth: AdminAuth | None = None) -> bool:
    """Create the first account from KEPU_ADMIN_USER / KEPU_ADMIN_PASSWORD if none exists."""
    auth = auth or shared_auth()
    return auth.bootstrap(os.environ.get("KEPU_ADMIN_USER"), os.environ.get("KEPU_ADMIN_PASSWORD"))
