"""The service registry: create, edit, list and remove services, never half-way.

Every ``add_*`` follows the same shape: validate the cheap things first (name free, paths
sane), then do the slow thing (pull, clone, build, hash) in a worker thread, derive the
interfaces, and only then save.  If anything after a build fails, the image we tagged is
removed again, so a failed ``add`` leaves neither a row nor an image behind.

Persistence goes through ``ServiceRepository`` (async, so the node can back it with the
store's DB thread).  ``InMemoryServiceRepository`` exists for unit tests and tools.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import subprocess
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast
from urllib.parse import urlsplit

from rnn_tui.errors import ServiceError
from rnn_tui.identity.keys import PeerId
from rnn_tui.services.datahash import FILE_PREFIX, hash_path, verify_path
from rnn_tui.services.docker_images import DockerImages, RegistryCredentials, redact_url
from rnn_tui.services.interface_edits import InterfaceEdits
from rnn_tui.services.interfaces import detect_interfaces, image_description, image_version
from rnn_tui.services.model import (
    Interface,
    InterfaceType,
    MountDirection,
    Requirements,
    Service,
    ServiceKind,
    ServiceSpecError,
    Visibility,
    service_id,
)
from rnn_tui.util.files import ensure_private_dir

__all__ = ["ServiceRepository", "InMemoryServiceRepository", "ServiceOptions", "ServiceRegistry",
           "GIT_SCHEMES", "DATA_MOUNT_PATH"]

_RESERVED: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "rnn_services_reserved_names", default=None)
_AddFn = TypeVar("_AddFn", bound=Callable[..., Awaitable[Service]])

GIT_SCHEMES = frozenset({"https", "http", "ssh", "git", "file"})
DATA_MOUNT_PATH = "/data"
_GIT_TIMEOUT = 300


class ServiceRepository(Protocol):
    """Where services persist.  The node implements it on the store's ``services`` table."""

    async def save(self, service: Service) -> None: ...
    async def get(self, service_id: str) -> Service | None: ...
    async def list(self) -> list[Service]: ...
    async def delete(self, service_id: str) -> bool: ...


class InMemoryServiceRepository:
    """A dict-backed repository (unit tests, one-shot tools)."""

    def __init__(self) -> None:
        self._rows: dict[str, Service] = {}

    async def save(self, service: Service) -> None:
        self._rows[service.id] = service

    async def get(self, service_id: str) -> Service | None:
        return self._rows.get(service_id)

    async def list(self) -> list[Service]:
        return sorted(self._rows.values(), key=lambda s: (s.name, s.id))

    async def delete(self, service_id: str) -> bool:
        return self._rows.pop(service_id, None) is not None


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    """What the operator may say when adding a service; ``None`` means "detect/default"."""

    name: str | None = None
    description: str | None = None
    version: str | None = None
    interfaces: tuple[Interface, ...] | None = None
    interface_edits: InterfaceEdits | None = None  # applied after detection (CLI --interface)
    requirements: Requirements = Requirements()
    visibility: Visibility = Visibility()


def _default_name(text: str) -> str:
    base = text.rstrip("/").rsplit("/", 1)[-1]
    base = base.split("@", 1)[0].split(":", 1)[0]
    if base.endswith(".git"):
        base = base[:-4]
    return base or "service"


def _reserving_names(fn: _AddFn) -> _AddFn:
    """Release the names an ``add_*`` reserved when it ends, however it ends."""

    @functools.wraps(fn)
    async def wrapper(self: ServiceRegistry, *args: Any, **kwargs: Any) -> Service:
        token = _RESERVED.set([])
        try:
            return await fn(self, *args, **kwargs)
        finally:
            for name in _RESERVED.get() or []:
                self._pending.discard(name)
            _RESERVED.reset(token)

    return cast(_AddFn, wrapper)


class ServiceRegistry:
    """Creates and edits services owned by this node."""

    def __init__(self, repository: ServiceRepository, owner: PeerId, *,
                 images: DockerImages | None = None, clock: Callable[[], float],
                 scratch_dir: Path | None = None) -> None:
        self.repository = repository
        self.owner = owner
        self._images = images
        self._clock = clock
        self._scratch_dir = scratch_dir
        self._pending: set[str] = set()

    @property
    def images(self) -> DockerImages:
        if self._images is None:
            self._images = DockerImages()
        return self._images

    def _now(self) -> int:
        return int(self._clock())

    # ----------------------------------------------------------------- reading
    async def get(self, sid: str) -> Service:
        service = await self.repository.get(sid)
        if service is None:
            # Accept a unique prefix, as operators type short ids.
            matches = [s for s in await self.repository.list() if s.id.startswith(sid)] if len(sid) >= 4 else []
            if len(matches) == 1:
                return matches[0]
            extra = f" ({len(matches)} services start with it)" if len(matches) > 1 else ""
            raise ServiceError(f"no service with id {sid!r}{extra}")
        return service

    async def list(self) -> list[Service]:
        return await self.repository.list()

    # ----------------------------------------------------------------- editing
    async def update(self, sid: str, **changes: Any) -> Service:
        """Operator edits (interfaces, description, visibility, requirements, version)."""
        service = await self.get(sid)
        allowed = {"interfaces", "description", "visibility", "requirements", "version"}
        bad = set(changes) - allowed
        if bad:
            raise ServiceSpecError(f"cannot edit {sorted(bad)}; editable: {sorted(allowed)}")
        updated = service.with_changes(self._now(), **changes)
        await self.repository.save(updated)
        return updated

    async def remove(self, sid: str, *, remove_image: bool = True) -> Service:
        service = await self.get(sid)
        await self.repository.delete(service.id)
        if remove_image and service.kind is ServiceKind.DOCKER and service.image_ref \
                and service.image_ref.startswith("rnn-svc/"):
            await asyncio.to_thread(self.images.remove, service.image_ref)
        return service

    # ----------------------------------------------------------------- DOCKER
    @_reserving_names
    async def add_local_image(self, ref: str, options: ServiceOptions = ServiceOptions()) -> Service:
        """Register an image already present in the local engine."""
        name = options.name or _default_name(ref)
        await self._require_free(name)
        inspect = await asyncio.to_thread(self.images.inspect, ref)
        return await self._register_image(name, ref, inspect, options, f"image:{ref}", built=False)

    @_reserving_names
    async def add_from_image(self, ref: str, options: ServiceOptions = ServiceOptions(), *,
                             credentials: RegistryCredentials | None = None) -> Service:
        """Pull ``ref`` (with optional credentials, never logged) and register it."""
        name = options.name or _default_name(ref)
        await self._require_free(name)
        inspect = await asyncio.to_thread(self.images.pull, ref, credentials)
        return await self._register_image(name, ref, inspect, options, f"pull:{ref}", built=False)

    @_reserving_names
    async def add_from_dockerfile_dir(self, directory: Path, dockerfile: str = "Dockerfile",
                                      options: ServiceOptions = ServiceOptions()) -> Service:
        """Build ``directory`` (the context) with ``dockerfile`` inside it, then register."""
        directory = Path(await asyncio.to_thread(os.path.abspath, directory))
        if not await asyncio.to_thread(directory.is_dir):
            raise ServiceError(f"{directory}: not a directory (expected a build context)")
        name = options.name or _default_name(str(directory))
        await self._require_free(name)
        return await self._build_and_register(directory, dockerfile, name, options,
                                              f"dir:{directory}:{dockerfile}")

    @_reserving_names
    async def add_from_git(self, url: str, ref: str = "HEAD", dockerfile: str = "Dockerfile",
                           options: ServiceOptions = ServiceOptions()) -> Service:
        """Clone ``url`` at ``ref`` with git, build ``dockerfile`` (relative to the repo)."""
        scheme = urlsplit(url).scheme.lower()
        if scheme not in GIT_SCHEMES:
            raise ServiceError(f"git URL {redact_url(url)!r}: scheme {scheme or '(none)'!r} is not "
                               f"allowed; use one of {sorted(GIT_SCHEMES)}")
        name = options.name or _default_name(urlsplit(url).path)
        await self._require_free(name)
        if self._scratch_dir is not None:
            await asyncio.to_thread(ensure_private_dir, self._scratch_dir)
        with tempfile.TemporaryDirectory(prefix="rnn-git-", dir=self._scratch_dir) as tmp:
            checkout = Path(tmp) / "repo"
            await asyncio.to_thread(_git_checkout, url, ref, checkout)
            return await self._build_and_register(checkout, dockerfile, name, options,
                                                  f"git:{redact_url(url)}#{ref}:{dockerfile}")

    async def _build_and_register(self, context: Path, dockerfile: str, name: str,
                                  options: ServiceOptions, source: str) -> Service:
        relative = await asyncio.to_thread(_dockerfile_inside, context, dockerfile)
        sid = service_id(self.owner, name)
        tag = f"rnn-svc/{sid}:latest"
        inspect = await asyncio.to_thread(self.images.build, context, relative, tag,
                                          {"io.remote-network.service": sid})
        try:
            return await self._register_image(name, tag, inspect, options, source, built=True)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(self.images.remove, tag))
            raise

    async def _register_image(self, name: str, ref: str, inspect: dict[str, Any],
                              options: ServiceOptions, source: str, *, built: bool) -> Service:
        interfaces = options.interfaces if options.interfaces is not None else detect_interfaces(inspect)
        if options.interface_edits is not None:
            interfaces = options.interface_edits.apply(interfaces)
        image_id = str(inspect.get("Id") or "")
        if not image_id:
            raise ServiceError(f"image {ref!r}: the engine reported no image id")
        service = Service.new(
            self.owner, name, ServiceKind.DOCKER, self._now(),
            description=options.description if options.description is not None
            else image_description(inspect),
            version=options.version or image_version(inspect) or "1",
            interfaces=interfaces, requirements=options.requirements,
            visibility=options.visibility, image_ref=ref, image_digest=image_id, source=source)
        await self._save_new(service)
        return service

    # ----------------------------------------------------------------- DATA
    @_reserving_names
    async def add_data(self, path: Path, options: ServiceOptions = ServiceOptions()) -> Service:
        """Publish a file or directory, content-hashed (see ``datahash``)."""
        path = Path(await asyncio.to_thread(os.path.abspath, path))
        name = options.name or path.name
        await self._require_free(name)
        content_hash = await asyncio.to_thread(hash_path, path)
        is_file = content_hash.startswith(FILE_PREFIX)
        if options.interfaces is not None:
            interfaces = options.interfaces
        else:
            mount = Interface(InterfaceType.MOUNT, DATA_MOUNT_PATH, MountDirection.OUTPUT,
                              "the published data")
            interfaces = (Interface(InterfaceType.STDOUT, description="the file's bytes"), mount) \
                if is_file else (mount,)
        if options.interface_edits is not None:
            interfaces = options.interface_edits.apply(interfaces)
        service = Service.new(
            self.owner, name, ServiceKind.DATA, self._now(),
            description=options.description or "", version=options.version or "1",
            interfaces=interfaces, requirements=options.requirements, visibility=options.visibility,
            content_hash=content_hash, data_path=str(path), source=f"data:{path}")
        await self._save_new(service)
        return service

    async def verify_data(self, sid: str) -> Service:
        """Re-hash a DATA service's content; ``DataIntegrityError`` when it changed."""
        service = await self.get(sid)
        if service.kind is not ServiceKind.DATA or not service.data_path or not service.content_hash:
            raise ServiceError(f"service {service.name!r} is not a local DATA service")
        await asyncio.to_thread(verify_path, Path(service.data_path), service.content_hash)
        return service

    # ----------------------------------------------------------------- helpers
    async def _require_free(self, name: str) -> None:
        """Refuse a name already stored or being added; else reserve it for this add.

        The reservation is released when the ``add_*`` call ends (``_reserving_names``), so
        two concurrent adds of one name cannot both build into the same image tag.
        """
        await self._check_not_stored(name)
        if name in self._pending:
            raise ServiceError(f"a service named {name!r} is being added right now")
        self._pending.add(name)
        reserved = _RESERVED.get()
        if reserved is not None:
            reserved.append(name)

    async def _check_not_stored(self, name: str) -> None:
        sid = service_id(self.owner, name)
        if await self.repository.get(sid) is not None:
            raise ServiceError(f"a service named {name!r} already exists (id {sid}); "
                               f"remove it first or choose another --name")

    async def _save_new(self, service: Service) -> None:
        await self._check_not_stored(service.name)
        await self.repository.save(service)


def _dockerfile_inside(context: Path, dockerfile: str) -> str:
    """``dockerfile`` relative to ``context``; refuse anything resolving outside it."""
    if not dockerfile:
        raise ServiceError("Dockerfile path is empty")
    root = context.resolve()
    candidate = (root / dockerfile).resolve()
    if candidate != root and root not in candidate.parents:
        raise ServiceError(f"Dockerfile path {dockerfile!r} resolves outside the build context "
                           f"{context} (to {candidate})")
    if not candidate.is_file():
        raise ServiceError(f"Dockerfile {dockerfile!r} not found in {context}")
    return candidate.relative_to(root).as_posix()


def _git_checkout(url: str, ref: str, target: Path) -> None:
    """Clone ``url`` into ``target`` and detach at ``ref`` (branch, tag or commit)."""
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="true")
    if ref.startswith("-"):
        raise ServiceError(f"git ref {ref!r} is not a valid ref")

    def git(*args: str, cwd: Path | None = None) -> str:
        try:
            done = subprocess.run(["git", "-c", "protocol.ext.allow=never", *args], cwd=cwd,
                                  env=env, capture_output=True, text=True, timeout=_GIT_TIMEOUT)
        except FileNotFoundError:
            raise ServiceError("git is not installed; it is needed to add a service from Git") from None
        except subprocess.TimeoutExpired:
            raise ServiceError(f"git {args[0]} of {redact_url(url)} took longer than "
                               f"{_GIT_TIMEOUT}s") from None
        if done.returncode != 0:
            tail = "\n".join(redact_url(done.stderr).strip().splitlines()[-5:])
            raise ServiceError(f"git {args[0]} of {redact_url(url)} failed: {tail}")
        return done.stdout.strip()

    git("clone", "--quiet", "--no-checkout", "--", url, str(target))
    for candidate in (ref, f"origin/{ref}"):
        try:
            commit = git("rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}", cwd=target)
        except ServiceError:
            continue
        git("checkout", "--quiet", "--detach", commit, cwd=target)
        return
    raise ServiceError(f"git ref {ref!r} not found in {redact_url(url)}")
