"""Creating services against the real engine: Dockerfile dir, Git (file://), local image,
interface detection (VOLUME, WorkingDir, label), and bad input leaving nothing behind."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from rnn_tui.errors import ServiceError
from rnn_tui.services.docker_images import RegistryCredentials
from rnn_tui.services.interfaces import INTERFACES_LABEL
from rnn_tui.services.model import InterfaceType, MountDirection, ServiceKind, ServiceSpecError
from rnn_tui.services.registry import ServiceOptions

pytestmark = [pytest.mark.integration, pytest.mark.docker]


def write_context(path: Path, dockerfile: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "Dockerfile").write_text(dockerfile)
    return path


def image_tags(client, sid: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [t for image in client.images.list() for t in image.tags if sid in t]


async def test_from_dockerfile_dir_detects_volume_and_workdir(service_registry, base_image, docker_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ctx = write_context(tmp_path / "tool", f"FROM {base_image}\nVOLUME /results\nWORKDIR /work\n"
                        'LABEL org.opencontainers.image.description="a test tool"\n')
    service = await service_registry.add_from_dockerfile_dir(ctx)
    assert service.kind is ServiceKind.DOCKER and service.name == "tool"
    assert service.description == "a test tool"
    assert service.image_digest == docker_client.images.get(service.image_ref).id
    assert [i.label for i in service.interfaces] == [
        "STDIN", "STDOUT", "STDERR", "LOGS", "MOUNT:/results(BOTH)", "MOUNT:/work(BOTH)"]
    assert image_tags(docker_client, service.id)
    await service_registry.remove(service.id)
    assert not image_tags(docker_client, service.id)  # the image we built goes with it


async def test_label_overrides_detection(service_registry, base_image, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    label = json.dumps([{"type": "STDIN", "description": "text"},
                        {"type": "MOUNT", "path": "/out", "direction": "OUTPUT"}])
    ctx = write_context(tmp_path / "labelled",
                        f"FROM {base_image}\nVOLUME /ignored\nLABEL {INTERFACES_LABEL}='{label}'\n")
    service = await service_registry.add_from_dockerfile_dir(ctx, options=ServiceOptions(name="lab"))
    assert [i.label for i in service.interfaces] == ["STDIN", "MOUNT:/out(OUTPUT)"]
    assert service.mounts(MountDirection.OUTPUT)[0].path == "/out"


async def test_malformed_label_leaves_no_image_and_no_service(service_registry, base_image, docker_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ctx = write_context(tmp_path / "bad", f"FROM {base_image}\n"
                        f"LABEL {INTERFACES_LABEL}='[{{\"type\": \"MOUNT\", \"path\": \"rel\"'\n")
    with pytest.raises(ServiceSpecError, match=INTERFACES_LABEL.replace(".", r"\.")):
        await service_registry.add_from_dockerfile_dir(ctx)
    assert await service_registry.list() == []
    from rnn_tui.services.model import service_id
    assert not image_tags(docker_client, service_id(service_registry.owner, "bad"))


async def test_failing_build_reports_log_tail(service_registry, base_image, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ctx = write_context(tmp_path / "broken", f"FROM {base_image}\n"
                        "RUN echo compiling-the-thing && echo the-reason-it-broke && exit 3\n")
    with pytest.raises(ServiceError) as info:
        await service_registry.add_from_dockerfile_dir(ctx)
    text = str(info.value)
    assert "build of" in text and "broken" in text and "the-reason-it-broke" in text
    assert "last lines of the build log" in text
    assert await service_registry.list() == []


async def test_from_local_git_repo(service_registry, base_image, docker_runtime, node_identity, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = tmp_path / "gitrepo"
    write_context(repo / "sub", f"FROM {base_image}\nCMD [\"echo\", \"built-from-git\"]\n")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}
    for cmd in (["init", "-q", "-b", "release"], ["add", "."], ["commit", "-qm", "v1"]):
        subprocess.run(["git", *cmd], cwd=repo, check=True, env=env)  # noqa: ASYNC221
    service = await service_registry.add_from_git(f"file://{repo}", "release", "sub/Dockerfile")
    assert service.name == "gitrepo" and service.source.startswith("git:file://")
    from rnn_tui.services.runtime import JobRequest
    result = await docker_runtime.run(JobRequest("git-job", service, node_identity.peer_id))
    assert result.stdout_path.read_bytes() == b"built-from-git\n"


async def test_from_local_image_and_missing_image(service_registry, base_image) -> None:  # type: ignore[no-untyped-def]
    service = await service_registry.add_local_image(base_image, ServiceOptions(name="base"))
    assert service.image_ref == base_image
    assert service.has_interface(InterfaceType.STDIN)
    with pytest.raises(ServiceError, match="not present locally"):
        await service_registry.add_local_image("rnn-test/does-not-exist:1")
    assert [s.name for s in await service_registry.list()] == ["base"]


async def test_pull_failure_is_clear_and_never_shows_the_password(service_registry) -> None:  # type: ignore[no-untyped-def]
    # A registry on a closed loopback port: the engine's attempt stays on this machine.
    creds = RegistryCredentials("someone", "s3cr3t-pass", "127.0.0.1:9")
    with pytest.raises(ServiceError, match=r"cannot pull image '127\.0\.0\.1:9/nope:1'") as info:
        await service_registry.add_from_image("127.0.0.1:9/nope:1", credentials=creds)
    assert "s3cr3t-pass" not in str(info.value) and "s3cr3t-pass" not in repr(creds)
    assert await service_registry.list() == []


async def test_data_service_hash_matches_sha256sum(service_registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "dataset.bin"
    f.write_bytes(bytes(range(256)) * 4096)
    service = await service_registry.add_data(f)
    independent = subprocess.run(["sha256sum", str(f)], capture_output=True, text=True,  # noqa: ASYNC221
                                 check=True).stdout.split()[0]
    assert service.content_hash == f"sha256:{independent}"
    await service_registry.verify_data(service.id)
    with f.open("r+b") as handle:  # noqa: ASYNC230
        handle.write(b"\xff")
    with pytest.raises(ServiceError, match="content changed"):
        await service_registry.verify_data(service.id)
