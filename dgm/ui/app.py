"""The web UI's server: pages rendered by Jinja2 from `pages`, each also answered as JSON
(`/api/...` or `Accept: application/json`), a server-sent event stream per run, and the
reviewer's writes (decisions, exports) behind a session and a CSRF token.

Reading needs a session (or the token as `Authorization: Bearer`) unless the server listens
on loopback only. Writing always does, and a form must carry its session's CSRF token; a
script may instead send the token as a bearer with `X-DGM-Reviewer: NAME`, which no browser
adds on its own."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from archive import Archive, jsonable
from archive.errors import ArchiveError, InvalidArgument, UnknownNode
from archive.records import interval_text
from dgm.review import service
from dgm.ui import lineage_svg, pages, rendering
from dgm.ui.sessions import COOKIE, LIFETIME_S, Session, Sessions, csrf_ok

HERE = Path(__file__).parent
STREAM_POLL_S = 0.5
STREAM_HEARTBEAT_S = 15.0
# agent-written text is escaped everywhere; these stop what might slip through anyway (no
# inline or foreign script) and framing (a reviewer tricked into clicking approve)
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self' "
     b"'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; "
     b"base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]  # fmt: skip


class UI:
    def __init__(self, archive: Archive, token: str, *, open_reading: bool):
        self.archive = archive
        self.sessions = Sessions(token)
        self.open_reading = open_reading
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.templates.env.globals["highlight_css"] = rendering.highlight_css()
        self.templates.env.filters["short"] = lambda v: (v or "-")[:8]
        self.templates.env.filters["score"] = _score

    # -- who is asking ----------------------------------------------------------------------

    def session(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    def _bearer(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.sessions.token_ok(token)

    def may_read(self, request: Request) -> bool:
        return self.open_reading or self.session(request) is not None or self._bearer(request)

    def writer(self, request: Request, form: dict[str, Any]) -> str:
        """The reviewer a write is made by; 403 unless a session with its CSRF token, or the
        token as a bearer with a reviewer's name."""
        if self._bearer(request):
            name = request.headers.get("x-dgm-reviewer", "").strip()
            if not name:
                raise HTTPException(403, "say who decides: the X-DGM-Reviewer header")
            return name[:200]
        session = self.session(request)
        if session is None:
            raise HTTPException(403, "log in with the reviewer token to decide or export")
        if not csrf_ok(session, form.get("csrf")):
            raise HTTPException(403, "the form's CSRF token is missing or wrong: reload the page")
        return session.reviewer

    # -- answers ----------------------------------------------------------------------------

    def page(
        self, request: Request, template: str, data: dict[str, Any], status: int = 200
    ) -> Response:
        if wants_json(request):
            return JSONResponse(_json(data), status_code=status)
        session = self.session(request)
        context = {**data, "session": session, "csrf": session.csrf if session else ""}
        return self.templates.TemplateResponse(request, template, context, status_code=status)

    def guarded(self, handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        """A read: 401 (or the login page) without access, archive errors as pages."""

        async def endpoint(request: Request) -> Response:
            if not self.may_read(request):
                if wants_json(request):
                    return JSONResponse({"error": "log in with the reviewer token"}, 401)
                return RedirectResponse(f"/login?next={quote(request.url.path)}", 303)
            return await handler(request)

        return endpoint


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return request.url.path.startswith("/api/") or (
        "application/json" in accept and "text/html" not in accept
    )


def _json(data: Any) -> Any:
    """Plain data: pages' dataclasses and records as their fields, HTML left out."""
    if isinstance(data, dict):
        return {k: _json(v) for k, v in data.items() if k != "files"}
    if isinstance(data, list):
        return [_json(v) for v in data]
    return jsonable(data)


def _score(score: Any) -> str:
    resolved, attempted = score
    if not attempted:
        return "-"
    return f"{resolved}/{attempted} ({resolved / attempted:.2f}; 95% {interval_text(score)})"


def _safe_next(target: str | None) -> str:
    """Only a path on this server: never an open redirect."""
    parts = urlsplit(target or "/")
    if parts.scheme or parts.netloc or not (target or "/").startswith("/"):
        return "/"
    return target or "/"


def create_app(archive: Archive, token: str, *, open_reading: bool) -> Starlette:
    ui = UI(archive, token, open_reading=open_reading)
    arc = archive

    async def threaded(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await run_in_threadpool(fn, *args, **kwargs)

    async def home(request: Request) -> Response:
        return RedirectResponse("/runs", 303)

    async def runs(request: Request) -> Response:
        return ui.page(request, "runs.html", await threaded(pages.runs_page, arc))

    async def run(request: Request) -> Response:
        data = await threaded(pages.run_page, arc, request.path_params["run_id"])
        return ui.page(request, "run.html", data)

    async def stream(request: Request) -> Response:
        run_id = await threaded(pages.arc_run_id, arc, request.path_params["run_id"])

        async def events() -> AsyncIterator[str]:
            seen, quiet = None, 0.0
            while not await request.is_disconnected():
                probe = await threaded(_probe, arc, run_id)
                if probe != seen:
                    seen, quiet = probe, 0.0
                    state = await threaded(pages.live_state, arc, run_id)
                    yield f"data: {json.dumps(_json(state))}\n\n"
                elif quiet >= STREAM_HEARTBEAT_S:
                    quiet = 0.0
                    yield ": still here\n\n"
                await asyncio.sleep(STREAM_POLL_S)
                quiet += STREAM_POLL_S

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    async def tree(request: Request) -> Response:
        q = request.query_params
        opened = frozenset(filter(None, q.get("open", "").split(",")))
        collapse = q.get("collapse", "1") != "0"
        data, layout = await threaded(
            pages.tree_page, arc, q.get("run") or None, collapse=collapse, opened=opened
        )
        if wants_json(request):
            return JSONResponse(_json(data))
        base = f"?run={quote(data['run'] or '')}&collapse={int(collapse)}&open="
        opened_href = base + quote(",".join(sorted(opened))) + ("," if opened else "")
        svg = await threaded(lineage_svg.svg, layout, open_href=opened_href)
        return ui.page(request, "tree.html", {**data, "svg": svg, "dead": layout.folded})

    async def node(request: Request) -> Response:
        data = await threaded(pages.node_page, arc, request.path_params["node_id"])
        return ui.page(request, "node.html", data)

    async def evaluation(request: Request) -> Response:
        data = await threaded(pages.evaluation_page, arc, request.path_params["evaluation_id"])
        return ui.page(request, "evaluation.html", data)

    async def solve(request: Request) -> Response:
        params = request.path_params
        data = await threaded(pages.solve_page, arc, params["node_id"], params["solve_id"])
        return ui.page(request, "solve.html", data)

    async def compare(request: Request) -> Response:
        q = request.query_params
        if not q.get("a") or not q.get("b"):
            raise InvalidArgument("compare needs two nodes: ?a=ID&b=ID")
        data = await threaded(pages.compare_page, arc, q["a"], q["b"])
        return ui.page(request, "compare.html", data)

    async def queue(request: Request) -> Response:
        return ui.page(request, "reviews.html", await threaded(pages.queue_page, arc))

    async def decide(request: Request) -> Response:
        form = dict(await request.form())
        who = ui.writer(request, form)
        choice = form.get("decision")
        if choice not in ("approve", "reject"):
            raise InvalidArgument("decide approve or reject")
        node_id = await threaded(arc.resolve, request.path_params["node_id"])
        decision = await threaded(
            service.decide, arc, node_id, approve=choice == "approve", who=who,
            reason=str(form.get("reason", "")),
        )  # fmt: skip
        if wants_json(request):
            return JSONResponse(_json(decision))
        return RedirectResponse(_safe_next(str(form.get("next") or f"/nodes/{node_id}")), 303)

    async def export(request: Request) -> Response:
        form = dict(await request.form())
        who = ui.writer(request, form)
        node_id = await threaded(arc.resolve, request.path_params["node_id"])
        data = await threaded(_export_tar, arc, node_id, who)
        name = f"dgm-{node_id[:8]}.tar.gz"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        return Response(data, media_type="application/gzip", headers=headers)

    async def login(request: Request) -> Response:
        target = _safe_next(request.query_params.get("next"))
        if request.method == "GET":
            return ui.templates.TemplateResponse(
                request, "login.html", {"next": target, "error": "", "session": None}
            )
        form = await request.form()
        session = ui.sessions.open(str(form.get("token", "")), str(form.get("name", "")))
        if session is None:
            error = "wrong token, or no name given"
            return ui.templates.TemplateResponse(
                request, "login.html", {"next": target, "error": error, "session": None},
                status_code=403,
            )  # fmt: skip
        response = RedirectResponse(_safe_next(str(form.get("next") or target)), 303)
        response.set_cookie(
            COOKIE, session.id, max_age=LIFETIME_S, httponly=True, samesite="strict", path="/"
        )
        return response

    async def logout(request: Request) -> Response:
        form = dict(await request.form())
        session = ui.session(request)
        if session is not None and csrf_ok(session, form.get("csrf")):
            ui.sessions.close(session.id)
        response = RedirectResponse("/runs", 303)
        response.delete_cookie(COOKIE, path="/")
        return response

    async def failed(request: Request, error: Exception) -> Response:
        status = 404 if isinstance(error, UnknownNode) else 400
        if isinstance(error, HTTPException):
            status, message = error.status_code, str(error.detail)
        else:
            message = str(error)
        if wants_json(request):
            return JSONResponse({"error": message}, status_code=status)
        return ui.page(request, "error.html", {"message": message}, status)

    def both(path: str, endpoint: Callable, **options: Any) -> list[Route]:
        guarded = ui.guarded(endpoint)
        return [Route(path, guarded, **options), Route("/api" + path, guarded, **options)]

    routes = [
        Route("/", home),
        *both("/runs", runs),
        *both("/runs/{run_id}", run),
        Route("/runs/{run_id}/stream", ui.guarded(stream)),
        *both("/tree", tree),
        *both("/nodes/{node_id}", node),
        *both("/evaluations/{evaluation_id:int}", evaluation),
        *both("/nodes/{node_id}/solves/{solve_id:int}", solve),
        *both("/compare", compare),
        *both("/reviews", queue),
        *both("/nodes/{node_id}/decision", decide, methods=["POST"]),
        *both("/nodes/{node_id}/export", export, methods=["POST"]),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    handlers = {ArchiveError: failed, HTTPException: failed}
    return Starlette(
        routes=routes, exception_handlers=handlers, middleware=[Middleware(SecurityHeaders)]
    )


class SecurityHeaders:
    """ASGI middleware: SECURITY_HEADERS on every HTTP answer (event streams included)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def _probe(arc: Archive, run_id: str) -> tuple[int, int]:
    """What changes when anything happens in a run: its latest event and its node count."""
    last = arc.events(run_id=run_id, limit=1, last=True)
    return (last[-1].id if last else 0, sum(r == run_id for r in arc.node_runs().values()))


def _export_tar(arc: Archive, node_id: str, who: str) -> bytes:
    """The same bundle as `dgm export`, as a .tar.gz."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / f"dgm-{node_id[:8]}"
        service.export_passed(arc, node_id, out, actor=who, where="downloaded from dgm ui")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            tar.add(out, arcname=out.name)
        return buffer.getvalue()
