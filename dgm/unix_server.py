"""An ASGI app served by uvicorn on a Unix socket, from a thread of this process."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import uvicorn


class _NoShutdownCancels(logging.Filter):
    """Requests still open when the server stops (units abandoned on a stop) are cancelled by
    design; uvicorn reports each as an error with a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        cancelled = record.exc_info and record.exc_info[0] is asyncio.CancelledError
        return not (cancelled or "graceful shutdown exceeded" in record.getMessage())


logging.getLogger("uvicorn.error").addFilter(_NoShutdownCancels())


class UnixServer:
    """Serves `app` on `<fresh folder>/<name>.sock`; the folder holds nothing else, so it can
    be mounted into sandboxes, whose users must be able to connect (0755 folder, 0666 socket)."""

    def __init__(self, app, name: str):
        self._folder = Path(tempfile.mkdtemp(prefix=f"dgm-{name}-"))
        self.socket_path = str(self._folder / f"{name}.sock")
        config = uvicorn.Config(
            app,
            uds=self.socket_path,
            log_level="warning",
            access_log=False,
            lifespan="on",
            # requests still open at the end belong to units given up on: cut them at once
            timeout_graceful_shutdown=0,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"dgm-{name}", daemon=True)

    def start(self) -> UnixServer:
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the server on {self.socket_path} did not start")
            time.sleep(0.01)
        os.chmod(self._folder, 0o755)
        os.chmod(self.socket_path, 0o666)
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.should_exit = True
            self._thread.join()
        shutil.rmtree(self._folder, ignore_errors=True)
