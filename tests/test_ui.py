"""The web UI as a reviewer meets it: Debian's Chromium (Playwright) against `dgm ui` on a
generated 2,000-node archive and on a real run with the scripted FM; its JSON and its write
rules over plain HTTP."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from archive import Archive
from archive.records import NodeStatus
from dgm.config import load_config
from dgm.engine import Engine
from tests.conftest import DGM, UI_TOKEN, _free_port, run_dgm, ui_server
from tests.lineage_archive import build_lineage
from tests.scripted_fm import Reply, Request, ScriptedFM, ToolCall
from tests.test_run import respond, write_config

CHROMIUM = "/usr/bin/chromium"
TOKEN = UI_TOKEN


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("lineage") / "archive"
    return {**build_lineage(root, 2000), "root": str(root)}


@pytest.fixture(scope="module")
def big_server(big) -> Iterator[str]:
    with ui_server(Path(big["root"])) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("DGM_REQUIRE_BROWSER"):
            pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium")
        pytest.skip(f"no Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    yield context.new_page()
    context.close()


def log_in(page, base: str, name: str, token: str = TOKEN) -> None:
    page.goto(base + "/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=token]", token)
    page.click("form.login button")


def waiting_node(root: str) -> str:
    with Archive.open(Path(root)) as arc:
        return next(n.id for n in arc.nodes() if n.status is NodeStatus.AWAITING_APPROVAL)


def status_of(root: str, node: str) -> str:
    with Archive.open(Path(root)) as arc:
        return arc.node(node).status.value


# -- the lineage tree --------------------------------------------------------------------------


def test_the_tree_shows_every_node_and_a_click_opens_one(big, big_server, page):
    total = _node_count(Path(big["root"]))  # 2,000 (and any a test added)
    page.goto(big_server + "/tree?collapse=0")
    assert page.locator("#lineage a.node").count() == total
    assert page.inner_text("#tree-count") == f"{total} nodes"
    # folded: each node's dead children are one marker that counts them
    page.goto(big_server + "/tree")
    shown = page.locator("#lineage a.node").count()
    hidden = sum(
        int(re.match(r"\+(\d+) dead", t).group(1))
        for t in page.locator("#lineage a.marker text").all_text_contents()
    )
    assert shown + hidden == total and hidden > 0
    target = waiting_node(big["root"])
    page.fill("#find", target[:6])
    assert page.inner_text("#find-result") == "1 found"
    page.click(f'#lineage a[data-id="{target}"]')
    page.wait_for_url(f"**/nodes/{target}")
    assert target[:8] in page.inner_text("#node-title")
    assert "awaiting-approval" in page.inner_text("#node-title")


def test_a_marker_opens_the_dead_branches_it_stands_for(big_server, page):
    page.goto(big_server + "/tree")
    before = page.locator("#lineage a.node").count()
    marker = page.locator("#lineage a.marker").first
    folded = int(re.match(r"\+(\d+)", marker.text_content()).group(1))
    page.goto(big_server + "/tree" + marker.get_attribute("href"))
    assert page.locator("#lineage a.node").count() == before + folded


HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'


def test_text_an_agent_wrote_is_shown_never_run(big, big_server, page, tmp_path):
    agent = tmp_path / "hostile"
    agent.mkdir()
    (agent / "agent.py").write_text(f"# {HOSTILE}\ndef run(task):\n    return 'patch'\n")
    (agent / "tools.py").write_text("def edit(path, text):\n    open(path, 'w').write(text)\n")
    with Archive.open(Path(big["root"])) as arc:
        node = arc.add_node(agent, parent=big["seed"], proposal=HOSTILE, run_id=big["run"]).id
    answer = requests.get(f"{big_server}/nodes/{node}")
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"
    assert "<script>window.pwned" not in answer.text  # escaped
    page.goto(f"{big_server}/nodes/{node}")
    assert page.evaluate("window.pwned") is None
    assert HOSTILE in page.inner_text(".summary")  # shown as the text it is
    assert HOSTILE in page.inner_text("#diff")
    page.goto(f"{big_server}/runs/{big['run']}")
    page.wait_for_timeout(700)  # the event stream has filled the latest nodes
    assert page.evaluate("window.pwned") is None
    assert HOSTILE in page.inner_text("#latest-nodes")


def test_a_solve_is_shown_with_its_patch_and_conversation(big, big_server, page):
    from dgm.gateway import Spend
    from dgm.solve import Solved, keep

    patch = f"diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+# {HOSTILE}\n"
    said = json.dumps({"type": "model", "step": 0, "message": {"content": HOSTILE}})
    solved = Solved("ab" * 20, patch, (said + "\n").encode(), "ok, exit 0", 1, Spend(120, 0.5),
                    3.0, ())  # fmt: skip
    with Archive.open(Path(big["root"])) as arc:
        number = keep(arc, big["seed"], Path("/srv/project"), HOSTILE, "gpt-4o", solved,
                      applied=False)  # fmt: skip
    node = requests.get(f"{big_server}/api/nodes/{big['seed']}").json()
    assert [(s["id"], s["steps"], s["cost_usd"]) for s in node["solves"]] == [(number, 1, 0.5)]
    shown = requests.get(f"{big_server}/api/nodes/{big['seed'][:8]}/solves/{number}").json()
    assert shown["patch"] == patch and shown["solve"]["repo"] == "/srv/project"
    missing = requests.get(f"{big_server}/api/nodes/{big['seed']}/solves/{number + 999}")
    assert missing.status_code == 400 and f"no solve {number + 999}" in missing.json()["error"]
    page.goto(f"{big_server}/nodes/{big['seed']}/solves/{number}")
    assert page.evaluate("window.pwned") is None
    assert HOSTILE in page.inner_text("h1") and HOSTILE in page.inner_text("#trajectory")
    page.goto(f"{big_server}/nodes/{big['seed']}")
    page.click(f"#solves a[href$='/solves/{number}']")
    assert page.evaluate("window.pwned") is None and f"solve {number}" in page.inner_text(
        "nav.crumbs"
    )


# -- writing: the token, the session, the CSRF field -------------------------------------------


def test_a_decision_needs_the_token_and_the_forms_csrf_field(big, big_server):
    node = waiting_node(big["root"])
    url = f"{big_server}/nodes/{node}/decision"
    form = {"decision": "approve", "reason": "looks fine"}
    anonymous = requests.post(url, data=form, allow_redirects=False)
    assert anonymous.status_code == 403
    wrong = requests.Session()
    refused = wrong.post(big_server + "/login", data={"name": "mallory", "token": "guess" * 6},
                         allow_redirects=False)  # fmt: skip
    assert refused.status_code == 403 and "dgm_session" not in wrong.cookies
    assert wrong.post(url, data=form, allow_redirects=False).status_code == 403
    person = requests.Session()
    logged = person.post(big_server + "/login", data={"name": "dana", "token": TOKEN},
                         allow_redirects=False)  # fmt: skip
    assert logged.status_code == 303
    cookie = logged.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    no_csrf = person.post(url, data=form, allow_redirects=False)
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.text
    bad_csrf = person.post(url, data={**form, "csrf": "x" * 43}, allow_redirects=False)
    assert bad_csrf.status_code == 403
    assert status_of(big["root"], node) == "awaiting-approval"  # nothing changed
    with Archive.open(Path(big["root"])) as arc:
        assert [r for r in arc.reviews(node) if r.kind == "human"] == []
    page = person.get(f"{big_server}/nodes/{node}").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    done = person.post(url, data={**form, "csrf": csrf}, allow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/nodes/{node}"
    assert status_of(big["root"], node) == "pending"
    with Archive.open(Path(big["root"])) as arc:
        [decision] = [r for r in arc.reviews(node) if r.kind == "human"]
        assert (decision.reviewer, decision.reason) == ("dana", "looks fine")
        entry = arc.audit_entries()[-1]
        assert (entry.kind, entry.actor, entry.node_id) == ("decision", "dana", node)
        assert arc.verify_audit().ok


def test_an_export_downloads_the_bundle_once_the_gate_lets_it_out(big, big_server, tmp_path):
    person = requests.Session()
    person.post(big_server + "/login", data={"name": "hal", "token": TOKEN})
    csrf = re.search(r'name="csrf" value="([^"]+)"', person.get(big_server + "/runs").text)[1]
    waiting = waiting_node(big["root"])
    refused = person.post(f"{big_server}/nodes/{waiting}/export", data={"csrf": csrf})
    assert refused.status_code == 400 and "has not passed the export gate" in refused.text
    assert person.post(f"{big_server}/nodes/{big['seed']}/export").status_code == 403
    bundle = person.post(f"{big_server}/nodes/{big['seed']}/export", data={"csrf": csrf})
    assert bundle.status_code == 200
    assert (
        bundle.headers["content-disposition"]
        == f'attachment; filename="dgm-{big["seed"][:8]}.tar.gz"'
    )
    (tmp_path / "export.tar.gz").write_bytes(bundle.content)
    with tarfile.open(tmp_path / "export.tar.gz") as tar:
        names = tar.getnames()
        provenance = json.load(tar.extractfile(f"dgm-{big['seed'][:8]}/provenance.json"))
    assert f"dgm-{big['seed'][:8]}/agent.bundle" in names
    assert provenance["node"]["id"] == big["seed"]
    with Archive.open(Path(big["root"])) as arc:
        entry = arc.audit_entries()[-1]
        assert (entry.kind, entry.actor, entry.node_id) == ("export", "hal", big["seed"])
        assert entry.payload["out"] == "downloaded from dgm ui"


def test_a_script_decides_with_the_token_as_a_bearer(big, big_server):
    node = waiting_node(big["root"])
    url = f"{big_server}/api/nodes/{node}/decision"
    form = {"decision": "reject", "reason": "reads a credential"}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    nameless = requests.post(url, data=form, headers=headers)
    assert nameless.status_code == 403 and "X-DGM-Reviewer" in nameless.json()["error"]
    done = requests.post(url, data=form, headers={**headers, "X-DGM-Reviewer": "erin"})
    assert done.status_code == 200 and done.json()["reviewer"] == "erin"
    assert status_of(big["root"], node) == "rejected"
    again = requests.post(url, data={**form, "decision": "approve"},
                          headers={**headers, "X-DGM-Reviewer": "erin"})  # fmt: skip
    assert again.status_code == 400 and "is rejected" in again.json()["error"]


# -- every page answers as JSON ----------------------------------------------------------------


def test_every_page_answers_as_json(big, big_server):
    total = _node_count(Path(big["root"]))  # 2,000 (and any a test added)
    runs = requests.get(big_server + "/api/runs").json()["runs"]
    assert [r["nodes"] for r in runs] == [total]
    negotiated = requests.get(big_server + "/runs", headers={"Accept": "application/json"})
    assert negotiated.json()["runs"][0]["id"] == big["run"]
    run = requests.get(f"{big_server}/api/runs/{big['run'][:8]}").json()
    assert run["nodes"] == total and run["run"]["awaiting_review"] >= 1
    tree = requests.get(big_server + "/api/tree?collapse=0").json()
    assert tree["total"] == tree["shown"] == total
    node = requests.get(f"{big_server}/api/nodes/{big['seed']}").json()
    assert node["node"]["id"] == big["seed"] and node["children"]
    queue = requests.get(big_server + "/api/reviews").json()
    assert all(w["risk"] == "high" for w in queue["waiting"])
    child = node["children"][0]
    compared = requests.get(f"{big_server}/api/compare?a={big['seed']}&b={child}").json()
    assert compared["diff"].startswith("diff --git a/agent.py b/agent.py")
    missing = requests.get(big_server + "/api/nodes/ffffffff")
    assert missing.status_code == 404 and "ffffffff" in missing.json()["error"]


def test_on_another_address_reading_needs_the_token_too(big):
    # 0.0.0.0 listens on every address; the test still talks to it over loopback only
    with ui_server(Path(big["root"]), host="0.0.0.0") as base:
        assert requests.get(base + "/api/runs").status_code == 401
        page = requests.get(base + "/runs", allow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/login?next=/runs"
        bearer = requests.get(base + "/api/runs", headers={"Authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 200
        person = requests.Session()
        person.post(base + "/login", data={"name": "fay", "token": TOKEN})
        assert person.get(base + "/api/tree").status_code == 200


def test_the_command_prints_a_fresh_token_and_refuses_a_taken_port(big, tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "DGM_UI_TOKEN"}
    argv = [DGM, "ui", "--archive", big["root"], "--port", str(port)]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    try:
        first = process.stdout.readline()
        token = process.stdout.readline().strip().removeprefix("reviewer token: ")
        assert first.startswith(f"dgm ui: http://127.0.0.1:{port}/") and len(token) >= 16
        taken = run_dgm("ui", "--archive", big["root"], "--port", str(port))
        assert taken.returncode == 2
        assert taken.stderr.strip().startswith(f"dgm: error: cannot listen on 127.0.0.1:{port}")
        session, base = requests.Session(), f"http://127.0.0.1:{port}"
        for _ in range(100):  # the first server is up once it answers
            try:
                login = {"name": "gus", "token": token}
                answer = session.post(f"{base}/login", data=login, allow_redirects=False)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        assert answer.status_code == 303
    finally:
        process.terminate()
        process.wait(10)


# -- a real run: the node page, the live dashboard, an approval the run takes up ---------------

NETWORK = (
    "import socket\n\n\ndef probe():\n    return socket.create_connection(('example.com', 80))\n"
)


def test_a_reviewer_follows_a_run_and_approves_a_change_it_takes_up(
    base_image, tmp_path, monkeypatch, page
):
    go_on = threading.Event()
    conversations = itertools.count()

    def responder(request: Request) -> Reply:
        body = request.body
        if body["model"] == "self-model" and body["messages"][-1]["role"] != "tool":
            if next(conversations) == 0:  # the first child opens a socket: high, it waits
                return Reply("", [ToolCall("editor", {"command": "create", "path": "probe.py",
                                                      "file_text": NETWORK})])  # fmt: skip
            go_on.wait(300)  # later expansions wait until the test lets them go on
        return respond(request)

    archive = tmp_path / "archive"
    config = load_config(
        write_config(tmp_path),
        ["review.fm=false", "budget.expansions=3", "selector.name=best"],
    )
    with ScriptedFM(responder=responder) as fm:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-run")
        monkeypatch.setenv("OPENAI_BASE_URL", fm.openai_base_url)
        outcome: dict = {}
        running = threading.Thread(target=lambda: outcome.update(end=Engine(config).run()))
        running.start()
        try:
            flagged = _wait_for(lambda: _awaiting(archive), "a child waiting for a person")
            _wait_for(lambda: _results(archive, flagged) == 2, "its results")
            with ui_server(archive) as base:
                run_id = requests.get(base + "/api/runs").json()["runs"][0]["id"]
                # the node page: its diff, the findings, the expansion's trajectory
                page.goto(f"{base}/nodes/{flagged}")
                assert "probe.py" in page.inner_text("#diff")
                assert "socket.create_connection" in page.inner_text("#diff")
                assert "network" in page.inner_text("#review")
                assert page.locator("#trajectory li.turn.assistant").count() >= 1
                assert "editor" in page.inner_text("#trajectory")
                _screenshot(page, "node")
                # a result opens the agent's work on that task as a conversation
                page.click("#results a")
                page.wait_for_url("**/evaluations/*")
                assert page.locator("#trajectory li.turn").count() >= 2
                assert "TRIED.md" in page.text_content("#trajectory")  # folded, but there
                # the dashboard, then an approval in the queue while the run waits
                dashboard = page.context.new_page()
                dashboard.goto(f"{base}/runs/{run_id}")
                shown = int(dashboard.inner_text("#node-count"))
                page.goto(f"{base}/tree?run={run_id}")
                assert page.locator("#lineage a.node").count() == shown
                _screenshot(page, "tree")
                log_in(page, base, "carol")
                page.goto(base + "/reviews")
                row = page.locator(f'tr[data-node="{flagged}"]')
                row.locator("input[name=reason]").fill("the probe is never called")
                row.locator("button[value=approve]").click()
                page.wait_for_url("**/reviews")
                assert page.locator("#queue-empty").is_visible()
                # the running search takes the decision up: the child is admitted
                _wait_for(lambda: status_of(str(archive), flagged) == "admitted", "admission")
                assert running.is_alive()
                go_on.set()
                # the next child shows on the dashboard within 2 s of being added
                nodes = _wait_for(lambda: _node_count(archive) > shown and _node_count(archive),
                                  "a new node")  # fmt: skip
                added = time.monotonic()
                while int(dashboard.inner_text("#node-count")) < nodes:
                    assert time.monotonic() - added < 2.0, "the dashboard missed the new node"
                    time.sleep(0.02)
                _screenshot(dashboard, "dashboard")
        finally:
            go_on.set()
            running.join(600)
    assert outcome["end"].reason == "budget expansions spent"
    with Archive.open(archive) as arc:
        [decision] = [r for r in arc.reviews(flagged) if r.kind == "human"]
        assert (decision.reviewer, decision.decision) == ("carol", "approve")
        passed = [e for e in arc.audit_entries()
                  if e.kind == "gate" and e.node_id == flagged and e.payload["state"] == "passed"
                  and e.payload["gate"] == "admit"]  # fmt: skip
        assert passed and arc.verify_audit().ok


def _screenshot(page, name: str) -> None:
    """Kept where $DGM_UI_SCREENSHOTS says, for a person to look at."""
    if folder := os.environ.get("DGM_UI_SCREENSHOTS"):
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def _wait_for(probe, what: str, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {timeout} s")


def _awaiting(archive: Path) -> str | None:
    if not (archive / "archive.db").exists():
        return None
    with Archive.open(archive) as arc:
        return next((n.id for n in arc.nodes() if n.status is NodeStatus.AWAITING_APPROVAL), None)


def _results(archive: Path, node: str) -> int:
    with Archive.open(archive) as arc:
        return len(arc.evaluations(node))


def _node_count(archive: Path) -> int:
    with Archive.open(archive) as arc:
        return len(arc.nodes())
