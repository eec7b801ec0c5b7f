"""Docker fixtures for integration tests (imported by tests/integration/conftest.py).

Every session bootstraps its own busybox base image under a unique tag and removes it at
the end; tests build their images FROM it.  Containers are labelled with a fresh node id
per test, so a test only ever reaps its own.  When ``docker info`` fails, docker tests are
skipped with the engine's own error as the reason.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rnn_tui.identity import Identity
from rnn_tui.services.registry import InMemoryServiceRepository, ServiceRegistry
from rnn_tui.services.runtime import NODE_LABEL, DockerRuntime

__all__ = ["docker_client", "base_image", "node_identity", "service_registry", "docker_runtime"]


@pytest.fixture(scope="session")
def docker_client():  # type: ignore[no-untyped-def]
    try:
        import docker

        client = docker.from_env(timeout=120)
        client.info()
    except Exception as exc:  # any failure to reach the engine means: skip, saying why
        pytest.skip(f"Docker engine not usable: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_client) -> Iterator[str]:  # type: ignore[no-untyped-def]
    from rnn_tui.services.images import bootstrap_base_image

    tag = f"rnn-test/base:{os.getpid()}"
    bootstrap_base_image(docker_client, tag)
    yield tag
    try:
        docker_client.images.remove(tag, force=True)
    except Exception:
        pass


@pytest.fixture
def node_identity() -> Identity:
    return Identity(os.urandom(32))


@pytest.fixture
async def service_registry(docker_client, node_identity: Identity):  # type: ignore[no-untyped-def]
    from rnn_tui.services.docker_images import DockerImages

    registry = ServiceRegistry(InMemoryServiceRepository(), node_identity.peer_id,
                               images=DockerImages(docker_client), clock=time.time)
    yield registry
    for service in await registry.list():
        await registry.remove(service.id)


@pytest.fixture
async def docker_runtime(docker_client, node_identity: Identity, tmp_path: Path):  # type: ignore[no-untyped-def]
    runtime = DockerRuntime(node_identity.peer_id, tmp_path / "jobs", client=docker_client)
    yield runtime
    left = docker_client.containers.list(
        all=True, filters={"label": f"{NODE_LABEL}={node_identity.peer_id}"})
    for container in left:
        container.remove(force=True)
    assert not left, f"containers left behind: {[c.name for c in left]}"
