"""The HAProxy renderer: the stacks' rendered configs pass `haproxy -c` in the real image, and the image's
default config is the renderer's output."""

from __future__ import annotations

import io
import tarfile

import docker
import pytest

from components.haproxy_cfg import image_default_cfg
from harness.program import stack_config
from harness.recording import record_program
from images.build import ROOT


def haproxy_check(client: docker.DockerClient, image: str, cfg: str) -> tuple[int, str]:
    container = client.containers.create(image, ["haproxy", "-c", "-f", "/tmp/haproxy.cfg"])
    try:
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            data = cfg.encode()
            info = tarfile.TarInfo("haproxy.cfg")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        container.put_archive("/tmp", archive.getvalue())
        container.start()
        code = container.wait(timeout=30)["StatusCode"]
        return code, container.logs().decode()
    finally:
        container.remove(force=True)


@pytest.mark.parametrize("stack", ["local", "lab"])
def test_rendered_config_passes_haproxy_check(
    stack: str, docker_client: docker.DockerClient, images: dict[str, str]
) -> None:
    run = record_program(stack_config(stack), stack)
    cfg = run.resources["load-balancer-haproxy"].inputs["uploads"][0]["content"]
    code, output = haproxy_check(docker_client, images["haproxy"], cfg)
    assert code == 0, output
    assert "Configuration file is valid" in output


def test_a_broken_config_fails_haproxy_check(
    docker_client: docker.DockerClient, images: dict[str, str]
) -> None:
    code, output = haproxy_check(docker_client, images["haproxy"], "backend app\n    balance nonsense\n")
    assert code != 0, "the check must be able to fail"
    assert "Fatal errors found in configuration" in output


def test_image_default_config_is_the_renderers_output() -> None:
    shipped = (ROOT / "images" / "haproxy" / "haproxy.cfg").read_text()
    assert shipped == image_default_cfg(), (
        "regenerate: python -m components.haproxy_cfg > images/haproxy/haproxy.cfg"
    )
