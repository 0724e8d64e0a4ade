"""Shared fixtures: agent folders, archives on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from archive import Archive

DGM = str(Path(sys.executable).with_name("dgm"))


def write_files(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def agent_patch(tmp_path: Path, bench, task: str, files: dict[str, str]) -> str:
    """The patch an agent makes by editing a task's workspace (as the seed agent diffs it)."""
    from benchmarks.agent_run import git_repository

    repo = tmp_path / "repo"
    repo.mkdir(parents=True)
    bench.workspace(task, repo)
    git_repository(repo)
    write_files(repo, files)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    diff = ["git", "-C", str(repo), "diff", "--cached"]
    return subprocess.run(diff, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def agent_dir(tmp_path: Path) -> Path:
    return write_files(
        tmp_path / "agent",
        {
            "agent.py": "def run(task):\n    return 'patch'\n",
            "tools/edit.py": "def edit(path, text):\n    open(path, 'w').write(text)\n",
            "tests/test_agent.py": "def test_ok():\n    assert True\n",
        },
    )


def run_dgm(
    *args: str,
    archive: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the installed `dgm` command as a user would."""
    argv = [DGM, *args] + (["--archive", str(archive)] if archive is not None else [])
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=120,
    )


# -- PostgreSQL ------------------------------------------------------------------------------


class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1, started from Debian's binaries."""

    def __init__(self) -> None:
        initdbs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not initdbs:
            raise FileNotFoundError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin = Path(initdbs[-1]).parent
        self.dir = Path(tempfile.mkdtemp(prefix="dgm-pg-"))
        self.port = _free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # postgres refuses to run as root
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        data = self.dir / "data"
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(self.dir / "log"),
            "-w",
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off",
            "start",
        )
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        subprocess.run([*self.as_user, *argv], check=True, capture_output=True, cwd=self.dir)

    def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


UI_TOKEN = "reviewer-token-for-the-tests"


@contextmanager
def ui_server(archive: Path, *, host: str = "127.0.0.1") -> Iterator[str]:
    """`dgm ui` in its own process, as a user starts it (token UI_TOKEN); its base URL once
    it answers."""
    port = _free_port()
    env = {**os.environ, "DGM_UI_TOKEN": UI_TOKEN}
    argv = [DGM, "ui", "--archive", str(archive), "--host", host, "--port", str(port)]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/login", timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, process.stderr.read().decode()
                time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
    except (FileNotFoundError, subprocess.CalledProcessError) as error:
        if os.environ.get("DGM_REQUIRE_POSTGRES"):
            raise
        pytest.skip(f"PostgreSQL unavailable: {error}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres").create_database()


@pytest.fixture
def archive(tmp_path: Path, database_url: str | None) -> Iterator[Archive]:
    arc = Archive.init(tmp_path / "archive", database_url=database_url)
    yield arc
    arc.close()


# -- Docker ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_client():
    from sandbox.base import SandboxError
    from sandbox.docker_sandbox import connect

    try:
        return connect()
    except SandboxError as error:
        if os.environ.get("DGM_REQUIRE_DOCKER"):
            raise
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def base_image(docker_client) -> str:
    from sandbox.images import ensure_base_image

    return ensure_base_image(docker_client)


@pytest.fixture(scope="session")
def gvisor(docker_client) -> str:
    """The gVisor runtime's name, once Docker has it registered (scripts/start-docker.sh)."""
    if "runsc" not in docker_client.info().get("Runtimes", {}):
        if os.environ.get("DGM_REQUIRE_DOCKER"):
            pytest.fail("gVisor is not registered with Docker; see scripts/start-docker.sh")
        pytest.skip("gVisor (runsc) is not registered with Docker")
    return "runsc"


@pytest.fixture(scope="module", params=["docker", "gvisor"])
def docker_runtime(request, docker_client, base_image):
    """A factory of Docker sandboxes with Docker's own runtime, then with gVisor's (for
    module-wide fixtures such as a benchmark's grader)."""
    from sandbox.docker_sandbox import DockerSandbox

    runtime = request.getfixturevalue("gvisor") if request.param == "gvisor" else None

    def make(settings):
        settings = settings.model_copy(update={"runtime": runtime})
        return DockerSandbox(base_image, settings, client=docker_client)

    return make


@pytest.fixture(params=["docker", "gvisor", "bwrap"])
def new_sandbox(request):
    """A factory of sandboxes of one backend; every one it makes is closed afterwards."""
    from sandbox.bwrap_sandbox import BwrapSandbox
    from sandbox.docker_sandbox import DockerSandbox

    if request.param in ("docker", "gvisor"):
        client = request.getfixturevalue("docker_client")
        image = request.getfixturevalue("base_image")
        runtime = request.getfixturevalue("gvisor") if request.param == "gvisor" else None

        def make(settings):
            settings = settings.model_copy(update={"runtime": runtime})
            return DockerSandbox(image, settings, run_id="test", client=client)
    else:

        def make(settings):
            return BwrapSandbox(settings)

    made = []

    def tracked(settings):
        made.append(make(settings))
        return made[-1]

    yield tracked
    for sandbox in made:
        sandbox.close()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """Docker's own registry, serving on 127.0.0.1 only."""
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'store'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    server = subprocess.Popen(
        ["docker-registry", "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://{address}/v2/", timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    yield address
    server.kill()
    server.wait()


# -- Ray -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """A Ray cluster of two nodes on this machine, each with one Docker slot and one CPU; its
    nodes fail fast (in about 2 s) once killed. `cluster.address` is its head's."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # never report usage outward
    cluster_utils = pytest.importorskip("ray.cluster_utils")
    fast = {
        "health_check_initial_delay_ms": 1000, "health_check_period_ms": 1000,
        "health_check_timeout_ms": 1000, "health_check_failure_threshold": 2,
    }  # fmt: skip
    cluster = cluster_utils.Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1, "resources": {"docker": 1}, "include_dashboard": False,
            "_system_config": fast,
        },
    )  # fmt: skip
    cluster.add_node(num_cpus=1, resources={"docker": 1})
    try:
        yield cluster
    finally:
        cluster.shutdown()
