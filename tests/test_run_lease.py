"""One scheduler per run: the lease row and its heartbeat, on SQLite and PostgreSQL; a second
`dgm run` of a running run refused; a dead holder's run continued; a scheduler whose lease was
taken stops without writing."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest
from sqlalchemy import update

from archive import Archive
from archive.errors import RunHeld
from archive.schema import run_leases
from dgm.config import load_config
from dgm.engine import Engine
from dgm.run_lease import Lease
from tests.conftest import DGM, run_dgm
from tests.test_run import stalled_fm, until_agents_wait, write_config


def lease(archive: Archive, run_id: str, lost: list | None = None, lease_s: float = 60) -> Lease:
    sink = [] if lost is None else lost
    return Lease(archive, run_id, "r", lease_s=lease_s, on_lost=lambda: sink.append(1))


def set_row(archive: Archive, run_id: str, **values) -> None:
    """What another machine's scheduler wrote: its host, its pid, its last heartbeat."""
    with archive._write() as conn:
        conn.execute(update(run_leases).where(run_leases.c.run_id == run_id).values(**values))


def test_a_held_run_is_refused_naming_its_holder(archive):
    run = archive.create_run("r", {})
    first = lease(archive, run.id)
    first.take()
    with pytest.raises(RunHeld) as refused:
        lease(archive, run.id).take()
    assert str(refused.value).startswith(
        f"run 'r' is running on {socket.gethostname()} (pid {os.getpid()}, heard from 0 s ago)"
    )
    first.release()
    second = lease(archive, run.id)
    second.take()  # released: free again
    assert archive.lease(run.id).holder == second.holder
    second.release()
    assert archive.lease(run.id) is None


def test_a_silent_holder_elsewhere_is_taken_over_and_stops(archive):
    run = archive.create_run("r", {})
    lost: list = []
    first = lease(archive, run.id, lost, lease_s=1.2)  # heartbeats every 0.2 s
    first.take()
    time.sleep(0.5)
    assert archive.lease(run.id).silent_s < 0.5  # its heartbeat goes on
    # as if it ran on another machine that went quiet: within the lease it still holds
    set_row(archive, run.id, host="elsewhere", pid=1)
    with pytest.raises(RunHeld, match="running on elsewhere"):
        lease(archive, run.id, lease_s=60).take()
    first._stop.set()  # its process froze: no more heartbeats
    first._thread.join()
    time.sleep(1.3)
    second = lease(archive, run.id, lease_s=1.2)
    second.take()
    assert archive.lease(run.id).holder == second.holder
    # the first comes back, finds the lease taken and gives the run up
    first._stop.clear()
    first._thread = threading.Thread(target=first._beat, daemon=True)
    first._thread.start()
    first._thread.join(2)
    assert lost == [1] and archive.lease(run.id).holder == second.holder
    first.release()  # drops nothing of the new holder's
    assert archive.lease(run.id).holder == second.holder
    second.release()


def test_a_dead_process_on_this_host_is_taken_over_at_once(archive):
    run = archive.create_run("r", {})
    first = lease(archive, run.id)
    first.take()
    first._stop.set()
    first._thread.join()
    gone = subprocess.Popen(["true"])
    gone.wait()
    set_row(archive, run.id, pid=gone.pid)  # fresh heartbeat, but its process is gone
    second = lease(archive, run.id)
    second.take()
    assert archive.lease(run.id).holder == second.holder
    second.release()


def test_two_claims_on_one_dead_lease_one_wins(archive):
    run = archive.create_run("r", {})
    assert archive.claim_lease(run.id, "a", "h", 1, replacing=None)
    assert not archive.claim_lease(run.id, "b", "h", 2, replacing=None)
    assert archive.claim_lease(run.id, "c", "h", 3, replacing="a")
    assert not archive.claim_lease(run.id, "d", "h", 4, replacing="a")
    assert archive.lease(run.id).holder == "c"
    assert archive.renew_lease(run.id, "c") and not archive.renew_lease(run.id, "a")


# -- `dgm run` ---------------------------------------------------------------------------------


def written(archive: Archive, run_id: str) -> int:
    """Events of the run but where its units run (the first scheduler tells them late)."""
    return sum(e.kind != "unit_placed" for e in archive.events(run_id=run_id))


def test_a_second_scheduler_is_refused_and_a_crashed_ones_run_continues(base_image, tmp_path):
    with stalled_fm() as (fm, release):
        env = {**os.environ, "OPENAI_API_KEY": "sk-run", "OPENAI_BASE_URL": fm.openai_base_url}
        config = write_config(tmp_path)
        first = subprocess.Popen([DGM, "run", str(config)], env=env, stderr=subprocess.PIPE)
        until_agents_wait(fm)
        archive = tmp_path / "archive"
        with Archive.open(archive) as arc:
            [run] = arc.runs()
            events = written(arc, run.id)
        containers = ["docker", "ps", "-q", "--filter", f"label=dgm.run={run.id}"]
        running = subprocess.run(containers, capture_output=True, text=True).stdout.split()
        assert len(running) == 2
        second = subprocess.run([DGM, "run", str(config)], env=env, capture_output=True,
                                text=True, timeout=120)  # fmt: skip
        assert second.returncode == 2
        [line] = second.stderr.strip().splitlines()
        assert re.fullmatch(
            rf"dgm: error: run 'e2e' is running on {re.escape(socket.gethostname())} "
            rf"\(pid {first.pid}, heard from \d+ s ago\); stop it there, or run this again "
            r"once it has been silent for 60 s",
            line,
        ), line
        # nothing of the run was touched: its sandboxes live, no event was written
        assert subprocess.run(containers, capture_output=True, text=True).stdout.split() == running
        with Archive.open(archive) as arc:
            assert written(arc, run.id) == events
        status = json.loads(run_dgm("status", "--json", archive=archive).stdout)
        assert status["held_by"]["pid"] == first.pid
        first.send_signal(signal.SIGKILL)
        first.wait()
        release.set()
        # its process is gone: the run continues here at once, from where it was
        again = subprocess.run([DGM, "run", str(config)], env=env, capture_output=True,
                               timeout=600)  # fmt: skip
        assert again.returncode == 0, again.stderr.decode()
    status = json.loads(run_dgm("status", "--json", archive=archive).stdout)
    assert (status["state"], status["reason"], status["held_by"]) == (
        "finished", "budget expansions spent", None
    )  # fmt: skip


def test_a_scheduler_whose_lease_is_taken_stops_without_writing(base_image, tmp_path, monkeypatch):
    archive = tmp_path / "archive"
    config = load_config(write_config(tmp_path), ["scheduler.lease_s=1.2"])
    with stalled_fm() as (fm, release):
        monkeypatch.setenv("OPENAI_API_KEY", "sk-run")
        monkeypatch.setenv("OPENAI_BASE_URL", fm.openai_base_url)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                Engine(config).run()
            except BaseException as error:
                errors.append(error)

        engine = threading.Thread(target=run)
        engine.start()
        until_agents_wait(fm)
        with Archive.open(archive) as arc:
            [run_row] = arc.runs()
            held = arc.lease(run_row.id)
            # another machine's scheduler took the run over (its holder went quiet, say)
            assert arc.claim_lease(run_row.id, "elsewhere", "host-b", 7, replacing=held.holder)
        engine.join(30)
        release.set()
        assert not engine.is_alive()
        [error] = errors
        assert isinstance(error, RunHeld) and "taken over by another scheduler" in str(error)
        with Archive.open(archive) as arc:
            assert arc.run(run_row.id).status == "running"  # the new holder's to finish
            assert arc.lease(run_row.id).holder == "elsewhere"
            kinds = [e.kind for e in arc.events(run_id=run_row.id)]
            assert "run_finished" not in kinds and "unit_finished" not in kinds
    # its sandboxes were ended
    left = ["docker", "ps", "-q", "--filter", f"label=dgm.run={run_row.id}"]
    for _ in range(100):
        if not subprocess.run(left, capture_output=True, text=True).stdout.strip():
            break
        time.sleep(0.1)
    assert not subprocess.run(left, capture_output=True, text=True).stdout.strip()
