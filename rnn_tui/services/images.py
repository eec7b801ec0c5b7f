"""An offline base image made from the host's static busybox.

Why: tests, demos and machines without registry access still need an image to build
services ``FROM``.  ``docker import`` of a tiny rootfs (``/bin/busybox`` plus a symlink
per applet, ``/etc/passwd``, ``/tmp``) needs no network.  The image carries a label with
the sha256 of the busybox binary, so ``bootstrap_base_image`` is idempotent: it does
nothing when the tag already points at an image made from the same binary.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

from rnn_tui.errors import ServiceError

__all__ = ["BASE_IMAGE", "BASE_LABEL", "bootstrap_base_image", "build_rootfs_tar", "find_busybox"]

BASE_IMAGE = "rnn/base:latest"
BASE_LABEL = "io.remote-network.base-busybox-sha256"
_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

_PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = b"root:x:0:\nnogroup:x:65534:\n"


def find_busybox() -> Path:
    for candidate in _CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    found = shutil.which("busybox")
    if found:
        return Path(found)
    raise ServiceError("busybox not found (looked in /bin, /usr/bin and PATH); "
                       "install busybox-static to bootstrap the base image")


def _applets(busybox: Path) -> list[str]:
    try:
        out = subprocess.run([str(busybox), "--list-full"], capture_output=True, check=True,
                             timeout=30, text=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ServiceError(f"{busybox}: cannot list applets ({exc})") from None
    return sorted({line.strip().lstrip("/") for line in out.splitlines() if line.strip()})


def build_rootfs_tar(busybox: Path) -> bytes:
    """A rootfs tar: busybox at /bin/busybox, one symlink per applet, minimal /etc."""
    data = busybox.read_bytes()
    if b"\x7fELF" != data[:4]:
        raise ServiceError(f"{busybox}: not an ELF binary")
    buf = io.BytesIO()
    now = int(time.time())

    def add(name: str, *, kind: bytes = tarfile.REGTYPE, mode: int = 0o755,
            content: bytes = b"", target: str = "") -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.mtime = now
        info.size = len(content) if kind == tarfile.REGTYPE else 0
        info.linkname = target
        tar.addfile(info, io.BytesIO(content) if kind == tarfile.REGTYPE else None)

    with tarfile.open(fileobj=buf, mode="w") as tar:
        for directory in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "proc",
                          "sys", "dev", "var", "data"):
            add(directory, kind=tarfile.DIRTYPE)
        add("tmp", kind=tarfile.DIRTYPE, mode=0o1777)
        add("bin/busybox", content=data)
        for applet in _applets(busybox):
            if applet in ("bin/busybox", "linuxrc") or "/" not in applet:
                continue
            depth = applet.count("/")
            add(applet, kind=tarfile.SYMTYPE, target="../" * depth + "bin/busybox")
        add("etc/passwd", mode=0o644, content=_PASSWD)
        add("etc/group", mode=0o644, content=_GROUP)
    return buf.getvalue()


def bootstrap_base_image(client: Any, tag: str = BASE_IMAGE, *, force: bool = False) -> str:
    """Make sure ``tag`` is our busybox base image; return its image id (``sha256:...``).

    ``client`` is a ``docker.DockerClient``.  Idempotent unless ``force``.
    """
    import docker.errors

    busybox = find_busybox()
    fingerprint = hashlib.sha256(busybox.read_bytes()).hexdigest()
    if not force:
        try:
            image = client.images.get(tag)
        except docker.errors.ImageNotFound:
            image = None
        except docker.errors.APIError as exc:
            raise ServiceError(f"docker engine: cannot look up {tag} ({exc.explanation})") from None
        if image is not None and (image.labels or {}).get(BASE_LABEL) == fingerprint:
            return str(image.id)
    repository, _, version = tag.rpartition(":")
    if not repository or "/" in version:
        repository, version = tag, "latest"
    changes = [
        "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        'CMD ["/bin/sh"]',
        f"LABEL {BASE_LABEL}={fingerprint}",
    ]
    try:
        client.api.import_image_from_data(build_rootfs_tar(busybox), repository=repository,
                                          tag=version, changes=changes)
        return str(client.images.get(tag).id)
    except docker.errors.APIError as exc:
        raise ServiceError(f"docker engine: cannot import the base image {tag} "
                           f"({exc.explanation})") from None
