"""The bridge inside a sandbox: `127.0.0.1:<port>` -> the FM gateway's Unix socket.

A sandbox has no network, only loopback; the gateway's socket is mounted in. This script
(standard library only, so any image with python3 runs it) accepts TCP connections on
loopback and splices each one to the socket, so agents use plain `http://127.0.0.1:<port>`.

    python3 bridge.py PORT SOCKET_PATH
"""

import contextlib
import socket
import sys
import threading


def pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock, how in ((target, socket.SHUT_WR), (source, socket.SHUT_RD)):
            with contextlib.suppress(OSError):
                sock.shutdown(how)


def splice(client: socket.socket, path: str) -> None:
    with client, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as upstream:
        try:
            upstream.connect(path)
        except OSError:
            return  # gateway gone: the agent sees a closed connection
        back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
        back.start()
        pipe(client, upstream)
        back.join()


def serve(port: int, path: str) -> None:
    listener = socket.create_server(("127.0.0.1", port))
    while True:
        client, _ = listener.accept()
        threading.Thread(target=splice, args=(client, path), daemon=True).start()


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2])
