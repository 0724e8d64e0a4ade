"""The in-sandbox bridge: loopback HTTP inside a network-less container reaches a host socket."""

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

from sandbox.base import SandboxSettings
from sandbox.docker_sandbox import DockerSandbox


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
def host_socket():
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


CALL = """
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


def test_agent_reaches_the_host_socket_through_loopback(docker_client, base_image, host_socket):
    settings = SandboxSettings(gateway_socket=host_socket)
    with DockerSandbox(base_image, settings, client=docker_client) as sandbox:
        result = sandbox.exec(["python3", "-c", CALL])
        assert json.loads(result.stdout) == {"path": "/v1/chat/completions", "bytes": 1_000_000}
        # still no way out except the bridge
        assert sandbox.exec(["cat", "/proc/net/dev"]).stdout.count(":") == 1
        assert "Read-only" in sandbox.exec(["touch", "/run/dgm/x"]).stderr


def test_agent_that_kills_its_bridge_only_cuts_itself_off(docker_client, base_image, host_socket):
    settings = SandboxSettings(gateway_socket=host_socket)
    with DockerSandbox(base_image, settings, client=docker_client) as sandbox:
        sandbox.exec(["pkill", "-f", "dgm-bridge"])
        cut = sandbox.exec(["python3", "-c", CALL])
        assert cut.exit_code != 0 and "Connection refused" in cut.stderr
    assert host_call(host_socket) == {"path": "/v1/messages", "bytes": 2}
    with DockerSandbox(base_image, settings, client=docker_client) as fresh:
        assert json.loads(fresh.exec(["python3", "-c", CALL]).stdout)["bytes"] == 1_000_000
