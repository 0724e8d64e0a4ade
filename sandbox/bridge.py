"""The bridge inside a sandbox: `127.0.0.1:<port>` -> the FM gateway's Unix socket.

A sandbox has no network, only loopback; the gateway's socket is mounted in. This script
(standard library only, so any image with python3 runs it) accepts TCP connections on
loopback and splices each one to the socket, so agents use plain `http://127.0.0.1:<port>`.

    python3 bridge.py PORT SOCKET_PATH             serve until killed (one per container)
    python3 bridge.py PORT SOCKET_PATH -- CMD...   serve while CMD runs (a bubblewrap command
                                                   gets a fresh network namespace each time)
"""

import contextlib
import os
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


def serve(listener: socket.socket, path: str) -> None:
    while True:
        client, _ = listener.accept()
        threading.Thread(target=splice, args=(client, path), daemon=True).start()


def serve_then_exec(listener: socket.socket, path: str, command: list[str]) -> None:
    """Serve from a child process and become CMD: the port answers before CMD starts."""
    if os.fork() == 0:
        quiet = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # the command's output ends when the command does
            os.dup2(quiet, fd)
        serve(listener, path)
    listener.close()
    try:
        os.execvp(command[0], command)
    except OSError as error:
        print(f"{command[0]}: {error.strerror}", file=sys.stderr)
        os._exit(127)


if __name__ == "__main__":
    port, path, *rest = sys.argv[1:]
    listener = socket.create_server(("127.0.0.1", int(port)))
    if rest[:1] == ["--"]:
        serve_then_exec(listener, path, rest[1:])
    serve(listener, path)
