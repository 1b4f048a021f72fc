"""Staff accounts, sessions and lock-out (bot/web/admin_auth.py) on a temporary
SQLite database, plus the `python -m bot.web.admin` account commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from bot.knowledge.store import make_engine
from bot.web import admin, admin_auth
from bot.web.admin_auth import (
    ADDRESS_MAX_FAILURES,
    LOCK_SECONDS,
    MAX_FAILURES,
    MAX_LOCK_SECONDS,
    MAX_THROTTLE_SECONDS,
    SESSION_SECONDS,
    THROTTLE_SECONDS,
    AdminAuth,
    AuthError,
    hash_password,
    lock_seconds,
    sessions_table,
    users_table,
    verify_password,
)

PASSWORD = "正确的密码-correct-horse"


class Clock:
    """A settable clock for expiry and lock-out tests."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def auth(tmp_path: Path, clock: Clock) -> AdminAuth:
    store = AdminAuth(make_engine(f"sqlite:///{tmp_path / 'admin.db'}"), clock=clock)
    store.create_user("zhangsan", PASSWORD)
    return store


def test_password_hash_is_salted_scrypt_and_verifies() -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first.startswith("scrypt$32768$8$1$") and first != second  # per-user random salt
    assert PASSWORD not in first
    assert verify_password(PASSWORD, first) and verify_password(PASSWORD, second)
    assert not verify_password(PASSWORD + "x", first)
    assert not verify_password(PASSWORD, "pbkdf2$garbage")
    assert not verify_password(PASSWORD, "")


def test_only_the_hash_is_stored(auth: AdminAuth) -> None:
    with auth.engine.connect() as conn:
        row = conn.execute(select(users_table)).one()
    assert row.name == "zhangsan" and PASSWORD not in row.password_hash


def test_weak_password_and_bad_names_are_refused(auth: AdminAuth) -> None:
    with pytest.raises(AuthError, match="至少"):
        auth.create_user("lisi", "short")
    with pytest.raises(AuthError, match="用户名"):
        auth.create_user("a b<script>", PASSWORD)
    with pytest.raises(AuthError, match="已存在"):
        auth.create_user("zhangsan", PASSWORD)
    assert auth.user_names() == ["zhangsan"]


def test_login_creates_a_server_side_session(auth: AdminAuth, clock: Clock) -> None:
    result = auth.login("zhangsan", PASSWORD, "10.0.0.1")
    assert result.token and result.session and result.message == ""
    session = auth.session(result.token)
    assert session is not None and session.user == "zhangsan" and len(session.csrf) >= 32
    with auth.engine.connect() as conn:
        stored = conn.execute(select(sessions_table.c.token_hash)).scalar_one()
    assert stored != result.token  # only the token's hash is kept
    assert auth.session("forged-token") is None
    clock.now += SESSION_SECONDS + 1
    assert auth.session(result.token) is None  # expired


def test_logout_and_user_removal_end_the_session(auth: AdminAuth) -> None:
    token = auth.login("zhangsan", PASSWORD, "10.0.0.1").token
    auth.end_session(token)
    assert auth.session(token) is None
    token = auth.login("zhangsan", PASSWORD, "10.0.0.1").token
    auth.set_password("zhangsan", PASSWORD + "-new")
    assert auth.session(token) is None
    token = auth.login("zhangsan", PASSWORD + "-new", "10.0.0.1").token
    assert auth.delete_user("zhangsan")
    assert auth.session(token) is None


def test_wrong_password_message_does_not_say_which_part(auth: AdminAuth) -> None:
    wrong = auth.login("zhangsan", "not-the-password", "10.0.0.1")
    unknown = auth.login("nobody", "not-the-password", "10.0.0.2")
    assert wrong.token is None and unknown.token is None
    assert wrong.message == unknown.message == "用户名或密码错误，请重新输入。"


def test_an_attacker_locks_out_only_themselves(auth: AdminAuth, clock: Clock) -> None:
    for _ in range(MAX_FAILURES):
        result = auth.login("zhangsan", "wrong-password", "10.6.6.6")
    assert result.locked and "锁定" in result.message and "15 分钟" in result.message
    # The guesser's own address is refused even with the right password ...
    refused = auth.login("zhangsan", PASSWORD, "10.6.6.6")
    assert refused.token is None and refused.locked and not refused.attempted
    # ... while the staff member, from their own address, logs in as usual.
    assert auth.login("zhangsan", PASSWORD, "10.0.0.8").token
    clock.now += LOCK_SECONDS + 1
    assert auth.login("zhangsan", PASSWORD, "10.6.6.6").token


def test_failures_spread_over_addresses_lock_nothing(auth: AdminAuth) -> None:
    for attempt in range(MAX_FAILURES):
        assert not auth.login("zhangsan", "wrong-password", f"10.0.1.{attempt}").locked
    assert auth.login("zhangsan", PASSWORD, "10.0.1.0").token
    assert auth.login("zhangsan", PASSWORD, "10.9.9.9").token


def test_every_further_failure_doubles_the_wait(auth: AdminAuth, clock: Clock) -> None:
    for _ in range(MAX_FAILURES):
        auth.login("zhangsan", "wrong-password", "10.6.6.6")
    waits = [auth.locked_for("zhangsan", "10.6.6.6")]
    for _ in range(3):
        clock.now += waits[-1] + 1
        assert auth.locked_for("zhangsan", "10.6.6.6") == 0
        assert auth.login("zhangsan", "wrong-password", "10.6.6.6").locked
        waits.append(auth.locked_for("zhangsan", "10.6.6.6"))
    assert waits == [LOCK_SECONDS, 2 * LOCK_SECONDS, 4 * LOCK_SECONDS, 8 * LOCK_SECONDS]
    assert "120 分钟" in auth.login("zhangsan", PASSWORD, "10.6.6.6").message
    assert lock_seconds(MAX_FAILURES + 40, MAX_FAILURES) == MAX_LOCK_SECONDS  # capped at a day


def test_many_failures_from_one_address_slow_it_down_but_lock_no_account(auth: AdminAuth, clock: Clock) -> None:
    """An office behind one NAT address: 20 failures (any names) throttle the address for seconds,
    they never lock the accounts for a quarter of an hour."""
    auth.create_user("lisi", PASSWORD)
    for attempt in range(ADDRESS_MAX_FAILURES):
        auth.login(f"guess{attempt}", "wrong-password", "10.0.0.66")
    throttled = auth.login("lisi", PASSWORD, "10.0.0.66")
    assert throttled.token is None and throttled.throttled and not throttled.locked and not throttled.attempted
    assert "秒后再试" in throttled.message and "没有被锁定" in throttled.message
    assert auth.locked_for("lisi", "10.0.0.66") == 0 and auth.throttled_for("10.0.0.66") == THROTTLE_SECONDS
    assert auth.login("lisi", PASSWORD, "10.0.0.67").token  # another address is fine
    clock.now += THROTTLE_SECONDS + 0.1  # seconds, not the 15 minutes of a lock
    assert auth.login("lisi", PASSWORD, "10.0.0.66").token


def test_the_address_delay_grows_with_every_further_failure(auth: AdminAuth, clock: Clock) -> None:
    for attempt in range(ADDRESS_MAX_FAILURES):
        auth.login(f"guess{attempt}", "wrong-password", "10.0.0.66")
    waits = [auth.throttled_for("10.0.0.66")]
    for attempt in range(7):
        clock.now += waits[-1] + 0.1
        result = auth.login(f"more{attempt}", "wrong-password", "10.0.0.66")
        assert result.attempted and not result.locked  # a failure again: the next wait is longer
        waits.append(auth.throttled_for("10.0.0.66"))
    assert [round(wait) for wait in waits] == [2, 4, 8, 16, 32, 60, 60, 60]
    assert max(waits) == MAX_THROTTLE_SECONDS
    assert auth.unlock("10.0.0.66") == 2 * (ADDRESS_MAX_FAILURES + 7)  # the address's and its pairs' rows
    assert auth.throttled_for("10.0.0.66") == 0 and auth.login("zhangsan", PASSWORD, "10.0.0.66").token


def test_unlock_by_name_clears_it_from_every_address(auth: AdminAuth) -> None:
    auth.create_user("lisi", PASSWORD)
    for ip in ("10.0.0.1", "10.0.0.2"):
        for _ in range(MAX_FAILURES):
            auth.login("zhangsan", "wrong-password", ip)
            auth.login("lisi", "wrong-password", ip)
    assert auth.unlock("zhangsan") == 2 * MAX_FAILURES  # only zhangsan's pair rows
    assert auth.login("zhangsan", PASSWORD, "10.0.0.1").token
    assert auth.login("zhangsan", PASSWORD, "10.0.0.2").token
    assert auth.login("lisi", PASSWORD, "10.0.0.1").locked  # lisi stays locked


def test_success_resets_the_pair_counter(auth: AdminAuth) -> None:
    for _ in range(MAX_FAILURES - 1):
        auth.login("zhangsan", "wrong-password", "10.0.0.1")
    assert auth.login("zhangsan", PASSWORD, "10.0.0.1").token
    for _ in range(MAX_FAILURES - 1):
        auth.login("zhangsan", "wrong-password", "10.0.0.1")
    assert auth.login("zhangsan", PASSWORD, "10.0.0.1").token


def test_bot_unlock_command(auth: AdminAuth, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from bot.cli import app as bot_cli
    from bot.staff.audit import list_audit

    monkeypatch.setenv("KEPU_DB_URL", f"sqlite:///{tmp_path / 'admin.db'}")  # the audit row goes here
    monkeypatch.setattr(admin_auth, "_shared", auth)
    for _ in range(MAX_FAILURES):
        auth.login("zhangsan", "wrong-password", "10.6.6.6")
    result = CliRunner().invoke(bot_cli, ["unlock", "zhangsan"])
    assert result.exit_code == 0, result.output
    assert "已解除锁定" in result.output and f"清除了 {MAX_FAILURES} 条" in result.output
    assert auth.login("zhangsan", PASSWORD, "10.6.6.6").token
    assert list_audit(1)[0]["action"] == "unlock"


def test_bootstrap_only_when_there_is_no_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = AdminAuth(make_engine(f"sqlite:///{tmp_path / 'boot.db'}"))
    monkeypatch.delenv("KEPU_ADMIN_USER", raising=False)
    monkeypatch.delenv("KEPU_ADMIN_PASSWORD", raising=False)
    assert not admin_auth.bootstrap_from_env(store) and store.user_count() == 0
    monkeypatch.setenv("KEPU_ADMIN_USER", "admin")
    monkeypatch.setenv("KEPU_ADMIN_PASSWORD", PASSWORD)
    assert admin_auth.bootstrap_from_env(store)
    assert store.user_names() == ["admin"]
    monkeypatch.setenv("KEPU_ADMIN_USER", "second")
    assert not admin_auth.bootstrap_from_env(store)
    assert store.user_names() == ["admin"]


def test_create_user_command_prompts_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    store = AdminAuth(make_engine(f"sqlite:///{tmp_path / 'cli.db'}"))
    monkeypatch.setattr(admin, "shared_auth", lambda: store)
    monkeypatch.setattr(admin.AdminSite, "audit", staticmethod(lambda *args: None))
    answers = iter([PASSWORD, PASSWORD, PASSWORD, "different-password"])
    monkeypatch.setattr(admin.getpass, "getpass", lambda prompt="": next(answers))
    assert admin.main(["create-user", "wangwu"]) == 0
    assert "已添加工作人员账号：wangwu" in capsys.readouterr().out
    assert store.login("wangwu", PASSWORD, "10.0.0.1").token
    assert admin.main(["create-user", "zhaoliu"]) == 1
    assert "两次输入的密码不一致" in capsys.readouterr().err
    assert store.user_names() == ["wangwu"]
