"""From inside a network-less sandbox, loopback reaches the FM gateway and nothing else."""

from __future__ import annotations

import http.client
import json
import os
import socket
import socketserver
import tempfile
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from archive import Archive
from dgm.gateway import Gateway, GatewaySettings, Upstream
from sandbox.base import ExecStatus, SandboxSettings
from tests.scripted_fm import Reply, ScriptedFM
from tests.test_sandboxes import mount_options


class Echo(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        reply = json.dumps({"path": self.path, "bytes": len(body)}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):  # client addresses of Unix sockets do not format
        pass


@pytest.fixture
def echo_socket():
    folder = tempfile.mkdtemp(prefix="dgm-gw-")
    os.chmod(folder, 0o755)
    path = os.path.join(folder, "gateway.sock")
    server = socketserver.ThreadingUnixStreamServer(path, Echo)
    os.chmod(path, 0o666)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield path
    server.shutdown()
    server.server_close()
    Path(path).unlink(missing_ok=True)
    os.rmdir(folder)


def with_gateway(socket_path: str) -> SandboxSettings:
    return SandboxSettings(gateway_socket=socket_path, timeout_s=30)


BIG_POST = """
import json, urllib.request
body = b"x" * 1_000_000
req = urllib.request.Request("http://127.0.0.1:8765/v1/chat/completions", data=body)
print(urllib.request.urlopen(req, timeout=10).read().decode())
"""


def host_call(path: str) -> dict:
    class UnixConnection(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(path)

    conn = UnixConnection("gateway")
    conn.request("POST", "/v1/messages", body=b"{}")
    return json.loads(conn.getresponse().read())


def test_agent_reaches_the_host_socket_through_loopback(new_sandbox, echo_socket):
    sandbox = new_sandbox(with_gateway(echo_socket))
    result = sandbox.exec(["python3", "-c", BIG_POST])
    assert json.loads(result.stdout) == {"path": "/v1/chat/completions", "bytes": 1_000_000}
    # still no way out except the bridge: loopback is the only interface, the socket read-only
    assert sandbox.exec(["cat", "/proc/net/dev"]).stdout.count(":") == 1
    assert sandbox.exec(["touch", "/run/dgm/x"]).exit_code != 0
    assert "ro" in mount_options(sandbox, "/run/dgm")


def test_agent_that_kills_its_bridge_only_cuts_itself_off(new_sandbox, echo_socket):
    sandbox = new_sandbox(with_gateway(echo_socket))
    # `[b]ridge` matches the bridge but not this shell's own command line
    cut = sandbox.exec(["sh", "-c", f"pkill -f '[b]ridge'; sleep 0.2; python3 -c '{BIG_POST}'"])
    assert cut.exit_code != 0 and "Connection refused" in cut.stderr
    assert host_call(echo_socket) == {"path": "/v1/messages", "bytes": 2}
    fresh = new_sandbox(with_gateway(echo_socket))
    assert json.loads(fresh.exec(["python3", "-c", BIG_POST]).stdout)["bytes"] == 1_000_000


AGENT = """
import json, os, urllib.request
request = urllib.request.Request(
    os.environ["OPENAI_BASE_URL"] + "/chat/completions",
    data=json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "fix"}]}).encode(),
    headers={"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"],
             "Content-Type": "application/json"},
)
print(json.load(urllib.request.urlopen(request, timeout=20))["choices"][0]["message"]["content"])
"""
REAL_KEY = "sk-real-key-never-in-a-sandbox"


def test_agent_calls_the_fm_through_the_gateway_without_ever_holding_the_key(new_sandbox, tmp_path):
    archive = Archive.init(tmp_path / "archive")
    with ScriptedFM(Reply("patched", input_tokens=30, output_tokens=4)) as fm:
        upstream = Upstream(base_url=fm.openai_base_url, api_key=REAL_KEY)
        with Gateway(GatewaySettings(openai=upstream), archive) as gateway:
            lease = gateway.open_unit("eval-7")
            sandbox = new_sandbox(with_gateway(gateway.socket_path))
            env = lease.env(8765)
            answer = sandbox.exec(["python3", "-c", AGENT], env=env)
            assert (answer.status, answer.stdout, answer.stderr) == (ExecStatus.OK, "patched\n", "")
            # the pattern `...[s]andbox` finds the key but not grep's own command line
            pattern = REAL_KEY.replace("sandbox", "[s]andbox")
            where = "/proc/*/environ /proc/*/cmdline /run /work /tmp"
            hunt = sandbox.exec(["sh", "-c", f"grep -rsl '{pattern}' {where}"], env=env)
            assert hunt.stdout == ""
    assert fm.requests[0].headers["authorization"] == f"Bearer {REAL_KEY}"
    [call] = archive.fm_calls(unit_id="eval-7")
    assert (call.status, call.input_tokens, call.output_tokens) == ("ok", 30, 4)
    archive.close()
