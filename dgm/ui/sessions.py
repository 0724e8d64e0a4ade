"""Who may write: a reviewer token (printed by `dgm ui` or `$DGM_UI_TOKEN`) exchanged for a
session cookie (HttpOnly, SameSite=Strict) that names the reviewer, with a CSRF token per
session that every form must carry. Sessions live in the server's memory: a restart logs
everyone out, and nothing secret is ever written to the archive."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass

COOKIE = "dgm_session"
LIFETIME_S = 12 * 3600
TOKEN_VARIABLE = "DGM_UI_TOKEN"


@dataclass(frozen=True)
class Session:
    id: str
    reviewer: str
    csrf: str
    expires: float


class Sessions:
    def __init__(self, token: str):
        if len(token) < 16:
            raise ValueError("a reviewer token needs at least 16 characters")
        self._token = token
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def token_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self._token.encode())

    def open(self, token: str | None, reviewer: str) -> Session | None:
        """A new session for the reviewer if the token is right."""
        if not self.token_ok(token) or not reviewer.strip():
            return None
        session = Session(
            secrets.token_urlsafe(32),
            reviewer.strip()[:200],
            secrets.token_urlsafe(32),
            time.time() + LIFETIME_S,
        )
        with self._lock:
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and session.expires < time.time():
                del self._sessions[session_id]
                session = None
        return session

    def close(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)


def csrf_ok(session: Session | None, given: str | None) -> bool:
    return (
        session is not None
        and given is not None
        and hmac.compare_digest(given.encode(), session.csrf.encode())
    )
