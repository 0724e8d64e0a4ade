"""Base images, built offline from Debian's packages and cached by a hash of their recipe.

No registry is needed: `debootstrap` builds a root filesystem from Debian's package archive,
and `docker import` turns it into an image tagged `dgm-agent-base:<recipe hash>`. The same
recipe is never built twice.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import docker
from docker.errors import ImageNotFound

from sandbox.base import SandboxError

BASE_RECIPE = {
    "suite": "bookworm",
    "variant": "minbase",
    "packages": ["python3", "git", "ca-certificates", "procps"],
}
BASE_NAME = "dgm-agent-base"


def recipe_tag(recipe: dict) -> str:
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    return f"{BASE_NAME}:{digest}"


def ensure_base_image(client: docker.DockerClient, recipe: dict = BASE_RECIPE) -> str:
    """The base agent image's tag, building it first if this engine lacks it."""
    tag = recipe_tag(recipe)
    try:
        client.images.get(tag)
        return tag
    except ImageNotFound:
        pass
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
                f"--variant={recipe['variant']}",
                f"--include={','.join(recipe['packages'])}",
                recipe["suite"],
                str(rootfs),
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:]
            raise SandboxError(f"debootstrap failed building {tag}: {' '.join(last)}")
        shutil.rmtree(rootfs / "var" / "cache" / "apt" / "archives", ignore_errors=True)
        archive = Path(tmp) / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(rootfs, arcname=".")
        repository, version = tag.split(":")
        client.api.import_image(
            src=str(archive),
            repository=repository,
            tag=version,
            changes=["ENV PYTHONDONTWRITEBYTECODE=1", 'CMD ["python3"]'],
        )
    return tag
