"""Image operations against the real Docker engine (blocking; call from a thread).

Why a separate adapter: the registry's rules (names, ids, rollback, validation) are
independent of how an image arrives; this module is the only place that knows docker-py's
image API and turns its exceptions into ``ServiceError`` messages that name the image, the
Dockerfile or the registry -- and never a credential.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors

from rnn_tui.errors import ServiceError

__all__ = ["RegistryCredentials", "DockerImages", "BUILD_LOG_TAIL_LINES", "redact_url"]

BUILD_LOG_TAIL_LINES = 15
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def redact_url(text: str) -> str:
    """Replace ``user:secret@`` in any URL inside ``text`` with ``***@``."""
    return _USERINFO.sub("***@", text)


@dataclass(frozen=True, slots=True)
class RegistryCredentials:
    """Registry login for a pull.  The password never appears in repr, logs or errors."""

    username: str
    password: str = field(repr=False)
    server: str | None = None

    def auth_config(self) -> dict[str, str]:
        out = {"username": self.username, "password": self.password}
        if self.server:
            out["serveraddress"] = self.server
        return out


def _scrub(message: str, credentials: RegistryCredentials | None) -> str:
    message = redact_url(message)
    if credentials is not None and credentials.password:
        message = message.replace(credentials.password, "***")
    return message


def _tail(lines: Iterable[str], n: int = BUILD_LOG_TAIL_LINES) -> str:
    kept = [line.rstrip() for line in lines if line.strip()]
    return "\n".join("  | " + line for line in kept[-n:])


def _build_log_lines(build_log: Iterable[Any]) -> list[str]:
    lines: list[str] = []
    for entry in build_log:
        if not isinstance(entry, Mapping):
            continue
        for key in ("stream", "error", "status"):
            value = entry.get(key)
            if isinstance(value, str):
                lines.extend(value.splitlines())
    return lines


class DockerImages:
    """Pull, look up, build and remove images; every method returns ``docker inspect`` data."""

    def __init__(self, client: docker.DockerClient | None = None, *, build_timeout: int = 900) -> None:
        self._client = client
        self.build_timeout = build_timeout

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                self._client = docker.from_env(timeout=120)
            except docker.errors.DockerException as exc:
                raise ServiceError(f"cannot reach the Docker engine ({exc})") from None
        return self._client

    def inspect(self, ref: str) -> dict[str, Any]:
        """``docker inspect`` of a local image, or a clear error when it is missing."""
        try:
            return dict(self.client.images.get(ref).attrs)
        except docker.errors.ImageNotFound:
            raise ServiceError(f"image {ref!r} is not present locally "
                               f"(pull it, or build it first)") from None
        except docker.errors.APIError as exc:
            raise ServiceError(f"image {ref!r}: docker engine error ({exc.explanation})") from None

    def exists(self, ref: str) -> bool:
        try:
            self.client.images.get(ref)
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.APIError as exc:
            raise ServiceError(f"image {ref!r}: docker engine error ({exc.explanation})") from None
        return True

    def pull(self, ref: str, credentials: RegistryCredentials | None = None) -> dict[str, Any]:
        repository, tag = _split_ref(ref)
        auth = credentials.auth_config() if credentials is not None else None
        try:
            self.client.images.pull(repository, tag=tag, auth_config=auth)
        except docker.errors.NotFound as exc:
            raise ServiceError(f"cannot pull image {ref!r}: not found in its registry "
                               f"({_scrub(str(exc.explanation), credentials)})") from None
        except (docker.errors.APIError, docker.errors.DockerException) as exc:
            detail = getattr(exc, "explanation", None) or str(exc)
            raise ServiceError(f"cannot pull image {ref!r}: "
                               f"{_scrub(str(detail), credentials)}") from None
        return self.inspect(ref)

    def build(self, context: Path, dockerfile: str, tag: str,
              labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Build ``context`` with ``dockerfile`` (relative to it) offline (``pull=False``)."""
        try:
            image, _logs = self.client.images.build(
                path=str(context), dockerfile=dockerfile, tag=tag, pull=False, rm=True,
                forcerm=True, labels=dict(labels or {}), timeout=self.build_timeout)
        except docker.errors.BuildError as exc:
            tail = _tail(_build_log_lines(exc.build_log))
            raise ServiceError(f"build of {context / dockerfile} failed: {exc.msg}\n"
                               f"last lines of the build log:\n{tail}") from None
        except (docker.errors.APIError, docker.errors.DockerException) as exc:
            detail = getattr(exc, "explanation", None) or str(exc)
            raise ServiceError(f"build of {context / dockerfile} failed: {detail}") from None
        return dict(image.attrs)

    def remove(self, ref: str) -> None:
        """Untag/remove ``ref``; an image still in use or already gone is left alone."""
        try:
            self.client.images.remove(ref, noprune=False)
        except (docker.errors.ImageNotFound, docker.errors.APIError):
            pass


def _split_ref(ref: str) -> tuple[str, str | None]:
    """Split ``repo[:tag][@digest]``; a port in the registry host is not a tag."""
    if "@" in ref:
        return ref, None
    head, _, last = ref.rpartition("/")
    if ":" in last:
        name, _, tag = last.rpartition(":")
        return (f"{head}/{name}" if head else name), tag
    return ref, "latest"
