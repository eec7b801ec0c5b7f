"""The offline base image's rootfs (built without an engine; importing it is integration)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from rnn_tui.errors import ServiceError
from rnn_tui.services.images import build_rootfs_tar, find_busybox


def test_rootfs_has_busybox_applets_and_sane_dirs() -> None:
    try:
        busybox = find_busybox()
    except ServiceError as exc:
        pytest.skip(str(exc))
    with tarfile.open(fileobj=io.BytesIO(build_rootfs_tar(busybox))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members["bin/busybox"].size == busybox.stat().st_size
        sh = members["bin/sh"]
        assert sh.issym() and sh.linkname == "../bin/busybox"
        assert members["usr/bin/awk"].linkname == "../../bin/busybox"
        assert members["tmp"].isdir() and members["tmp"].mode == 0o1777
        passwd = tar.extractfile("etc/passwd")
        assert passwd is not None and passwd.read().startswith(b"root:x:0:0:")
        assert not any(name.startswith("/") or ".." in name.split("/") for name in members)


def test_not_an_elf_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "busybox"
    fake.write_text("#!/bin/sh\n")
    with pytest.raises(ServiceError, match="not an ELF binary"):
        build_rootfs_tar(fake)
