"""What a sandbox costs: medians over N runs of each step of a sandbox's life.

    .venv/bin/python scripts/perf/sandbox_overhead.py [--runs 20]

Prints, for Docker (and Docker with gVisor when registered) and bubblewrap: create+start,
exec of `true`, copy-in of a 10 MB tree, removal, the whole round trip; the same `true` as a
plain subprocess; and what the FM gateway adds to a call (10 x N calls, plain and streamed,
each made alternately straight to a stub provider in its own process and through the
gateway, which meters it into a real SQLite archive).
Targets: round trip < 1.5 s, gateway overhead < 5 ms per call.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2 as httpx

from archive import Archive
from dgm.gateway import Gateway, GatewaySettings, Upstream
from sandbox.base import SandboxSettings
from sandbox.bwrap_sandbox import BwrapSandbox
from sandbox.docker_sandbox import DockerSandbox, connect
from sandbox.images import ensure_base_image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.scripted_fm import Reply, ScriptedFM


def ten_mb_tree(root: Path) -> Path:
    """100 files of 100 KB in 10 folders, incompressible like real binaries and data."""
    for i in range(100):
        path = root / f"dir{i % 10}" / f"file{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(100_000))
    return root


def measure(make, tree: Path, runs: int) -> dict[str, list[float]]:
    steps: dict[str, list[float]] = {
        k: [] for k in ("create+start", "exec true", "copy-in 10 MB", "remove", "round trip")
    }
    for _ in range(runs):
        t0 = time.perf_counter()
        sandbox = make()
        t1 = time.perf_counter()
        result = sandbox.exec(["true"])
        t2 = time.perf_counter()
        sandbox.copy_in(tree)
        t3 = time.perf_counter()
        sandbox.close()
        t4 = time.perf_counter()
        assert result.exit_code == 0, result
        steps["create+start"].append(t1 - t0)
        steps["exec true"].append(t2 - t1)
        steps["copy-in 10 MB"].append(t3 - t2)
        steps["remove"].append(t4 - t3)
        steps["round trip"].append((t2 - t0) + (t4 - t3))  # start, trivial command, remove
    return steps


def stub_provider(replies: list[Reply], pipe) -> None:
    """The stub provider, in its own process as a real one would be (no shared GIL)."""
    with ScriptedFM(*replies) as stub:
        pipe.send(stub.openai_base_url)
        pipe.recv()


def gateway_overhead(calls: int, stream: bool) -> tuple[float, float]:
    """Median latency of a call straight to the stub and through the gateway, in seconds."""
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 2000}]}
    body["stream"] = stream
    reply = Reply("y" * 400, input_tokens=500, output_tokens=100)
    ours, theirs = multiprocessing.Pipe()
    provider = multiprocessing.Process(target=stub_provider, args=([reply] * 2 * calls, theirs))
    provider.start()
    base_url = ours.recv()
    with tempfile.TemporaryDirectory() as tmp:
        archive = Archive.init(Path(tmp) / "archive")
        settings = GatewaySettings(openai=Upstream(base_url=base_url, api_key="k"))
        with Gateway(settings, archive) as gateway:
            lease = gateway.open_unit("perf")
            auth = {"authorization": f"Bearer {lease.token}"}
            via_socket = httpx.HTTPTransport(uds=gateway.socket_path)
            with (
                httpx.Client(base_url=base_url, headers=auth) as direct,
                httpx.Client(transport=via_socket, base_url="http://gw/v1", headers=auth) as gw,
            ):
                timings: dict[str, list[float]] = {"direct": [], "gateway": []}
                for _ in range(calls):
                    for name, client in (("direct", direct), ("gateway", gw)):
                        start = time.perf_counter()
                        answer = client.post("/chat/completions", json=body)
                        answer.read()
                        timings[name].append(time.perf_counter() - start)
                        answer.raise_for_status()
        assert len(archive.fm_calls(unit_id="perf")) == calls, "every gateway call is metered"
        archive.close()
    ours.send("stop")
    provider.join()
    return statistics.median(timings["direct"]), statistics.median(timings["gateway"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    client = connect()
    image = ensure_base_image(client)
    with tempfile.TemporaryDirectory() as tmp:
        tree = ten_mb_tree(Path(tmp))
        backends = {
            "docker": measure(lambda: DockerSandbox(image, client=client), tree, args.runs),
            "bwrap": measure(BwrapSandbox, tree, args.runs),
        }
        if "runsc" in client.info().get("Runtimes", {}):
            gvisor = SandboxSettings(runtime="runsc")
            backends["gvisor"] = measure(
                lambda: DockerSandbox(image, gvisor, client=client), tree, args.runs
            )
    plain = []
    for _ in range(args.runs):
        start = time.perf_counter()
        subprocess.run(["true"], check=True)
        plain.append(time.perf_counter() - start)
    print(f"sandbox_overhead: {args.runs} runs each, image {image}")
    for backend, steps in backends.items():
        for name, samples in steps.items():
            target = "   (target < 1500 ms)" if name == "round trip" else ""
            label = f"{backend} {name}"
            print(f"{label:<22} median {statistics.median(samples) * 1000:8.1f} ms{target}")
    print(f"{'plain true':<22} median {statistics.median(plain) * 1000:8.1f} ms (subprocess)")
    for stream in (False, True):
        direct, through = gateway_overhead(10 * args.runs, stream)
        kind = "streamed" if stream else "plain"
        print(
            f"gateway {kind + ' call':<14} median {through * 1000:8.1f} ms vs direct "
            f"{direct * 1000:.1f} ms: overhead {(through - direct) * 1000:.1f} ms "
            "(target < 5 ms)"
        )


if __name__ == "__main__":
    main()
