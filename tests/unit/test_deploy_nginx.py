"""deploy/nginx.conf, run for real (Debian's nginx, scripts/install-test-deps.sh) in front of two
stand-in replicas on loopback: the configuration is accepted, REST traffic reaches both replicas,
one WeChat user stays on one replica, /admin goes to rasa-1, Rasa's HTTP API is not offered, and
a WeChat request that a replica does not answer is given up before WeChat's 5 s.
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "nginx.conf"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (make test-deps installs it)")


def replica(name: str) -> ThreadingHTTPServer:
    """A stand-in Rasa replica that answers with its name; /webhooks/wechat/slow takes 8 s."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            if self.path.startswith("/webhooks/wechat/slow"):
                time.sleep(8)
            body = name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            self._answer()

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._answer()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def local_conf(tmp: Path, port: int, one: int, two: int) -> Path:
    text = CONF.read_text(encoding="utf-8")
    text = text.replace("listen 5005;", f"listen 127.0.0.1:{port};")
    text = text.replace("rasa-1:5005", f"127.0.0.1:{one}").replace("rasa-2:5005", f"127.0.0.1:{two}")
    text = text.replace("/tmp/", f"{tmp}/")
    path = tmp / "nginx.conf"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """nginx with deploy/nginx.conf on a free port, in front of replicas "one" and "two"."""
    tmp = tmp_path_factory.mktemp("nginx")
    servers = [replica("one"), replica("two")]
    port = free_port()
    conf = local_conf(tmp, port, servers[0].server_port, servers[1].server_port)
    proc = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(conf), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            if get(port, "/nginx-health")[0] == 200:
                break
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for server in servers:
            server.shutdown()


def get(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request(method, path, body=b"<xml/>" if method == "POST" else None)
        response = conn.getresponse()
        return response.status, response.read().decode()
    except OSError:
        return 0, ""
    finally:
        conn.close()


def test_the_configuration_is_accepted(tmp_path: Path):
    conf = local_conf(tmp_path, free_port(), free_port(), free_port())
    done = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(conf)], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr


def test_a_broken_configuration_is_refused(tmp_path: Path):
    conf = local_conf(tmp_path, free_port(), free_port(), free_port())
    conf.write_text(conf.read_text(encoding="utf-8").replace("least_conn;", "least_conn"), encoding="utf-8")
    done = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(conf)], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode != 0


def test_rest_traffic_reaches_both_replicas(edge: int):
    answers = {get(edge, "/webhooks/rest/webhook", "POST")[1] for _ in range(6)}
    assert answers == {"one", "two"}
    assert get(edge, "/status")[0] == 200


def test_one_wechat_user_stays_on_one_replica(edge: int):
    for user in ("oUserA", "oUserB", "oUserC"):
        answers = {get(edge, f"/webhooks/wechat/webhook?openid={user}&signature=s", "POST")[1] for _ in range(4)}
        assert len(answers) == 1, user


def test_admin_goes_to_the_first_replica(edge: int):
    assert {get(edge, "/admin/retrain")[1] for _ in range(4)} == {"one"}


def test_rasas_http_api_is_not_offered(edge: int):
    for path in ("/model", "/model/parse", "/conversations/x/tracker", "/domain", "/version"):
        assert get(edge, path)[0] == 404, path
    assert get(edge, "/modelling")[1] in ("one", "two")  # only those routes, not every prefix


def test_a_stuck_wechat_request_is_given_up_before_wechat_gives_up(edge: int):
    start = time.monotonic()
    status, _ = get(edge, "/webhooks/wechat/slow?openid=oUserA", "POST")
    elapsed = time.monotonic() - start
    assert status == 504 and elapsed < 5.0, (status, elapsed)
