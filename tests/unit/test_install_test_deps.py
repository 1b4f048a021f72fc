"""scripts/install-test-deps.sh installs each missing Debian package on its own.

The script runs for real; only the package tools it calls are stand-ins on PATH
(tests must not install system packages): `dpkg-query` answers from the list of
"installed" packages, `apt-get` records its calls and fails for the packages
told to fail, `id` says root.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "install-test-deps.sh"

STUBS = {
    "dpkg-query": """#!/bin/sh
for package; do :; done
for p in $STUB_INSTALLED; do [ "$p" = "$package" ] && { printf 'install ok installed'; exit 0; }; done
exit 1
""",
    "apt-get": """#!/bin/sh
echo "$*" >> "$STUB_LOG"
for p in $STUB_FAIL; do case " $* " in *" $p "*) exit 100;; esac; done
exit 0
""",
    "id": "#!/bin/sh\necho 0\n",
}


def run_script(tmp_path: Path, installed: str, fail: str = "", fetch: str = "true") -> tuple[int, list[str]]:
    """Run the script with the stand-ins; its exit status and the apt-get calls it made."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in STUBS.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "apt.log"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STUB_INSTALLED": installed,
           "STUB_FAIL": fail, "STUB_LOG": str(log), "KEPU_FETCH_SCHEMAS": fetch}
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False)
    calls = log.read_text().splitlines() if log.exists() else []
    return done.returncode, calls


def installs(calls: list[str]) -> list[str]:
    return [call.split()[-1] for call in calls if call.startswith("install")]


def test_the_cjk_font_is_installed_when_chromium_is_already_there(tmp_path: Path) -> None:
    status, calls = run_script(tmp_path, installed="chromium")
    assert status == 0
    assert installs(calls) == ["fonts-noto-cjk", "faketime", "redis-server", "nginx", "postgresql"]  # each in its own apt-get call
    assert calls[0] == "update -qq"


def test_redis_server_is_installed_when_it_alone_is_missing(tmp_path: Path) -> None:
    status, calls = run_script(tmp_path, installed="chromium fonts-noto-cjk faketime nginx postgresql")
    assert status == 0
    assert installs(calls) == ["redis-server"]


def test_nginx_is_installed_when_it_alone_is_missing(tmp_path: Path) -> None:
    status, calls = run_script(tmp_path, installed="chromium fonts-noto-cjk faketime redis-server postgresql")
    assert status == 0
    assert installs(calls) == ["nginx"]


def test_nothing_is_installed_when_everything_is_there(tmp_path: Path) -> None:
    status, calls = run_script(tmp_path, installed="chromium fonts-noto-cjk faketime redis-server nginx postgresql")
    assert (status, calls) == (0, [])


def test_one_failing_package_does_not_stop_the_others_but_fails_the_script(tmp_path: Path) -> None:
    status, calls = run_script(tmp_path, installed="", fail="fonts-noto-cjk")
    assert installs(calls) == ["chromium", "fonts-noto-cjk", "faketime", "redis-server", "nginx", "postgresql"]
    assert status == 1


def test_a_failing_schema_fetch_fails_the_script(tmp_path: Path) -> None:
    installed = "chromium fonts-noto-cjk faketime redis-server nginx postgresql"
    status, calls = run_script(tmp_path, installed=installed, fetch="false")
    assert (status, calls) == (1, [])
