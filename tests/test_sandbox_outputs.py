"""What comes out of a sandbox, on every backend: only the regular files and folders the
agent left, never what its links point at, never more than the limits, and nothing a process
it left behind can change while the host takes them."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import time
from pathlib import Path

import pytest

from sandbox.base import ExecStatus
from tests.test_sandboxes import SMALL

LIMITED = SMALL.model_copy(update={"copy_out_bytes": 1_000_000, "copy_out_files": 50})


@pytest.fixture
def sandbox(new_sandbox):
    return new_sandbox(LIMITED)


def run(sandbox, script: str, **options) -> None:
    result = sandbox.exec(["sh", "-c", script], **options)
    assert result.status is ExecStatus.OK and result.exit_code == 0, result


def files_under(folder: Path) -> dict[str, str]:
    """Every entry under `folder` by kind: file, folder, or anything else (which must not be)."""
    found = {}
    for root, dirs, names in os.walk(folder):
        for name in dirs + names:
            mode = os.lstat(Path(root, name)).st_mode
            kind = "file" if stat.S_ISREG(mode) else "folder" if stat.S_ISDIR(mode) else "other"
            found[str(Path(root, name).relative_to(folder))] = kind
    return found


def test_an_honest_agents_output_comes_out_whole(sandbox, tmp_path):
    run(
        sandbox,
        "mkdir -p out/deep/er && printf 'diff --git a/x b/x\\n' > out/patch.diff"
        " && : > out/empty && echo '#!/bin/sh' > out/deep/er/tool && chmod +x out/deep/er/tool"
        " && head -c 300000 /dev/urandom > out/data.bin",
    )
    taken = sandbox.copy_out("/work/out", tmp_path / "out")
    assert taken.refused == []
    assert sorted(taken.files) == ["data.bin", "deep/er/tool", "empty", "patch.diff"]
    out = tmp_path / "out"
    assert (out / "patch.diff").read_text() == "diff --git a/x b/x\n"
    assert (out / "data.bin").stat().st_size == 300_000
    assert os.access(out / "deep/er/tool", os.X_OK) and (out / "empty").read_bytes() == b""


def test_links_fifos_and_hard_links_are_refused_never_followed(sandbox, tmp_path):
    secret = tmp_path / "host-secret"  # a host file the agent names
    secret.write_text("sk-host-secret\n")
    run(
        sandbox,
        f"mkdir out && ln -s {secret} out/patch.diff && ln -s /proc/self/environ out/env"
        " && ln -s / out/root && mkfifo out/fifo && echo mine > out/real"
        " && ln out/real out/twin && echo kept > out/kept",
    )
    start = time.monotonic()
    taken = sandbox.copy_out("/work/out", tmp_path / "out")
    assert time.monotonic() - start < 10  # a FIFO is never opened for reading
    out = tmp_path / "out"
    assert "kept" in taken.files and (out / "kept").read_text() == "kept\n"
    assert set(files_under(out).values()) == {"file"}
    for name in ("patch.diff", "env", "root"):
        assert any(why.startswith(f"{name}: ") for why in taken.refused), (name, taken.refused)
    # gVisor keeps a FIFO inside its own kernel: the host never sees it
    assert not {"patch.diff", "env", "root", "fifo"} & set(os.listdir(out))
    assert any("hard link" in why for why in taken.refused), taken.refused
    assert not any("sk-host-secret" in p.read_text() for p in out.iterdir())


def test_an_output_folder_that_is_a_link_gives_nothing(sandbox, tmp_path):
    run(sandbox, "ln -s /etc out")
    taken = sandbox.copy_out("/work/out", tmp_path / "out")
    assert taken.files == [] and len(taken.refused) == 1
    assert "not a folder" in taken.refused[0] and os.listdir(tmp_path / "out") == []


def test_a_missing_output_folder_gives_nothing(sandbox, tmp_path):
    taken = sandbox.copy_out("/work/out", tmp_path / "out")
    assert taken.files == [] and "not a folder" in taken.refused[0]


def test_what_is_over_the_limits_is_refused_and_the_rest_taken(sandbox, tmp_path):
    run(
        sandbox,
        "mkdir -p out/many && head -c 2000000 /dev/zero > out/big && echo small > out/small"
        " && for i in $(seq 80); do : > out/many/f$i; done",
    )
    taken = sandbox.copy_out("/work/out", tmp_path / "out")
    assert any(w.startswith("big: over the limit of 1,000,000 bytes") for w in taken.refused)
    assert any("more entries than the limit" in why for why in taken.refused)
    assert len(taken.files) + 1 <= LIMITED.copy_out_files  # the folder `many` counts too
    assert not (tmp_path / "out" / "big").exists()


def escape_payload(target: Path) -> bytes:
    """A tar that writes outside any folder it is extracted into, through `..` and links."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, kind, link in (
            ("out/../../escaped", tarfile.REGTYPE, ""),
            ("out/link", tarfile.SYMTYPE, str(target)),
            ("out/link/escaped", tarfile.REGTYPE, ""),
        ):
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.size = kind, link, 4 if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(b"pwnd") if info.size else None)
    return buffer.getvalue()


def test_a_process_left_behind_cannot_reach_what_the_host_takes(sandbox, tmp_path):
    # It writes a crafted archive into every stream of every other process it can reach,
    # over and over: the way into the host's old `tar -c` in the container.
    (tmp_path / "payload.tar").write_bytes(escape_payload(tmp_path))
    sandbox.copy_in(tmp_path, "/work/attack")
    hunter = (
        "import os, time\n"
        "payload = open('/work/attack/payload.tar', 'rb').read()\n"
        "me = os.getpid()\n"
        "while True:\n"
        "    for pid in os.listdir('/proc'):\n"
        "        if pid.isdigit() and int(pid) != me:\n"
        "            for fd in ('1', '2'):\n"
        "                try:\n"
        "                    with open(f'/proc/{pid}/fd/{fd}', 'wb') as f: f.write(payload)\n"
        "                except OSError: pass\n"
        "    with open('/work/out/grown', 'a') as f: f.write('x')\n"
        "    time.sleep(0.05)\n"
    )
    started = sandbox.exec(
        ["sh", "-c", "mkdir out && echo honest > out/patch.diff"
         ' && (python3 -c "$1" >/dev/null 2>&1 &) && sleep 0.5 >/dev/null 2>&1', "sh", hunter],
        timeout_s=20,
    )  # fmt: skip
    assert started.status is ExecStatus.OK, started
    taken = sandbox.copy_out("/work/out", tmp_path / "taken")
    assert sorted(taken.files) == ["grown", "patch.diff"], taken
    assert (tmp_path / "taken" / "patch.diff").read_text() == "honest\n"
    assert not (tmp_path / "escaped").exists() and not list(tmp_path.rglob("escaped"))
    # frozen while taken: the file it keeps growing came out whole, as one moment saw it
    assert set((tmp_path / "taken" / "grown").read_text()) == {"x"}


def test_outputs_are_taken_after_a_timeout(sandbox, tmp_path):
    result = sandbox.exec(
        ["sh", "-c", "mkdir out && echo partial > out/patch.diff && sleep 600"], timeout_s=2
    )
    assert result.status is ExecStatus.TIMEOUT
    taken = sandbox.copy_out("/work/out", tmp_path / "out")
    assert taken.files == ["patch.diff"]
    assert (tmp_path / "out" / "patch.diff").read_text() == "partial\n"


def test_the_target_must_be_new_or_empty_and_not_a_link(sandbox, tmp_path):
    from sandbox.base import SandboxError

    run(sandbox, "mkdir out && echo x > out/a")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old").write_text("old")
    with pytest.raises(SandboxError, match="not empty"):
        sandbox.copy_out("/work/out", tmp_path / "full")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SandboxError, match="cannot copy out into"):
        sandbox.copy_out("/work/out", tmp_path / "link")
    assert os.listdir(tmp_path / "elsewhere") == []
