"""Registry rules that need no Docker engine: DATA services, names, paths, Git errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from rnn_tui.errors import ServiceError
from rnn_tui.identity import Identity
from rnn_tui.services.datahash import DataIntegrityError
from rnn_tui.services.model import (
    Interface,
    InterfaceType,
    MountDirection,
    ServiceKind,
    ServiceSpecError,
    Visibility,
    VisibilityMode,
)
from rnn_tui.services.registry import InMemoryServiceRepository, ServiceOptions, ServiceRegistry

OWNER = Identity(b"\x01" * 32).peer_id


def make_git_repo(repo: Path) -> Path:
    repo.mkdir()
    (repo / "Dockerfile").write_text("FROM scratch\n")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-qm", "x"]):
        subprocess.run(["git", *cmd], cwd=repo, check=True, env=env)
    return repo


def registry() -> ServiceRegistry:
    return ServiceRegistry(InMemoryServiceRepository(), OWNER, clock=lambda: 1000.0)


async def test_data_file_service_is_hashed_and_verified(tmp_path: Path) -> None:
    f = tmp_path / "species.csv"
    f.write_text("bee,1\n")
    reg = registry()
    service = await reg.add_data(f, ServiceOptions(description="pollinators"))
    assert service.kind is ServiceKind.DATA and service.name == "species.csv"
    assert service.content_hash is not None and service.content_hash.startswith("sha256:")
    assert [i.label for i in service.interfaces] == ["STDOUT", "MOUNT:/data(OUTPUT)"]
    assert await reg.verify_data(service.id) == service
    f.write_text("bee,2\n")
    with pytest.raises(DataIntegrityError, match="content changed"):
        await reg.verify_data(service.id[:8])  # a unique prefix works as an id


async def test_data_dir_service_offers_a_mount(tmp_path: Path) -> None:
    d = tmp_path / "tiles"
    d.mkdir()
    (d / "t1").write_bytes(b"x")
    service = await registry().add_data(d)
    assert service.content_hash is not None and service.content_hash.startswith("sha256-tree-v1:")
    assert [i.label for i in service.interfaces] == ["MOUNT:/data(OUTPUT)"]


async def test_duplicate_name_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    f = tmp_path / "x"
    f.write_bytes(b"1")
    reg = registry()
    first = await reg.add_data(f, ServiceOptions(name="same"))
    with pytest.raises(ServiceError, match="already exists"):
        await reg.add_data(f, ServiceOptions(name="same", description="other"))
    assert await reg.list() == [first]


async def test_missing_data_is_a_clear_error_and_not_registered(tmp_path: Path) -> None:
    reg = registry()
    with pytest.raises(ServiceError, match="cannot read data"):
        await reg.add_data(tmp_path / "missing")
    assert await reg.list() == []


async def test_dockerfile_outside_the_context_is_refused(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (ctx / "link").symlink_to(tmp_path / "Dockerfile")
    reg = registry()
    for path in ("../Dockerfile", "link", str(tmp_path / "Dockerfile")):
        with pytest.raises(ServiceError, match="outside the build context"):
            await reg.add_from_dockerfile_dir(ctx, path)
    with pytest.raises(ServiceError, match="not found"):
        await reg.add_from_dockerfile_dir(ctx, "Nope")
    with pytest.raises(ServiceError, match="not a directory"):
        await reg.add_from_dockerfile_dir(tmp_path / "nodir")
    assert await reg.list() == []


async def test_git_errors(tmp_path: Path) -> None:
    reg = registry()
    with pytest.raises(ServiceError, match="scheme 'ext' is not allowed"):
        await reg.add_from_git("ext::sh -c touch% /tmp/pwned")
    with pytest.raises(ServiceError, match=r"git clone of file://.*/missing failed"):
        await reg.add_from_git(f"file://{tmp_path}/missing")
    with pytest.raises(ServiceError, match=r"\*\*\*@") as info:  # credentials never echoed
        await reg.add_from_git(f"file://user:hunter2@{tmp_path}/missing")
    assert "hunter2" not in str(info.value)
    repo = make_git_repo(tmp_path / "repo")
    with pytest.raises(ServiceError, match="git ref 'no-such-branch' not found"):
        await reg.add_from_git(f"file://{repo}", "no-such-branch")
    with pytest.raises(ServiceError, match="outside the build context"):
        await reg.add_from_git(f"file://{repo}", "HEAD", "../../etc/passwd")
    assert await reg.list() == []


async def test_git_scratch_dir_is_created_private(tmp_path: Path) -> None:
    scratch = tmp_path / "data" / "scratch"
    reg = ServiceRegistry(InMemoryServiceRepository(), OWNER, clock=lambda: 1.0, scratch_dir=scratch)
    with pytest.raises(ServiceError, match="git clone"):
        await reg.add_from_git(f"file://{tmp_path}/missing")
    assert (scratch.stat().st_mode & 0o777) == 0o700 and not list(scratch.iterdir())


async def test_operator_edits_interfaces_and_visibility(tmp_path: Path) -> None:
    f = tmp_path / "x"
    f.write_bytes(b"1")
    reg = registry()
    service = await reg.add_data(f)
    new = (Interface(InterfaceType.MOUNT, "/in", MountDirection.INPUT, "edited"),)
    edited = await reg.update(service.id, interfaces=new,
                              visibility=Visibility(VisibilityMode.PRIVATE))
    assert edited.interfaces == new and (await reg.get(service.id)).visibility.mode is VisibilityMode.PRIVATE
    with pytest.raises(ServiceSpecError, match="cannot edit"):
        await reg.update(service.id, content_hash="sha256:1")
    removed = await reg.remove(service.id)
    assert removed.id == service.id and await reg.list() == []
    with pytest.raises(ServiceError, match="no service with id"):
        await reg.get(service.id)


async def test_concurrent_adds_of_one_name_cannot_both_proceed(tmp_path: Path) -> None:
    import asyncio

    big = tmp_path / "big"
    big.write_bytes(b"x" * (64 << 20))  # hashing takes a while: the second add overlaps it
    reg = registry()
    results = await asyncio.gather(reg.add_data(big, ServiceOptions(name="same")),
                                   reg.add_data(big, ServiceOptions(name="same")),
                                   return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and "being added right now" in str(errors[0])
    assert [s.name for s in await reg.list()] == ["same"]
    # the reservation ends with the call: after a failure the name is free again
    with pytest.raises(ServiceError):
        await reg.add_data(tmp_path / "missing", ServiceOptions(name="again"))
    assert (await reg.add_data(big, ServiceOptions(name="again"))).name == "again"
