"""Content hashes of DATA services: what changes the hash and what does not."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from rnn_tui.errors import ServiceError
from rnn_tui.services.datahash import (
    DataIntegrityError,
    hash_file,
    hash_path,
    hash_tree,
    verify_path,
)


def make_tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"alpha")
    (root / "sub" / "b.bin").write_bytes(bytes(range(256)))
    (root / "empty").mkdir()
    return root


def test_file_hash_is_plain_sha256(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x" * 3_000_000)
    assert hash_file(f) == "sha256:" + hashlib.sha256(b"x" * 3_000_000).hexdigest()
    assert hash_path(f) == hash_file(f)


def test_tree_hash_ignores_mtime_and_location(tmp_path: Path) -> None:
    one = make_tree(tmp_path / "one")
    two = make_tree(tmp_path / "two")
    os.utime(two / "a.txt", (1, 1))
    assert hash_tree(one) == hash_tree(two)
    assert hash_tree(one).startswith("sha256-tree-v1:")


@pytest.mark.parametrize("change", [
    lambda r: (r / "a.txt").write_bytes(b"alphA"),
    lambda r: (r / "a.txt").rename(r / "c.txt"),
    lambda r: (r / "empty").rmdir(),
    lambda r: os.chmod(r / "a.txt", 0o755),
    lambda r: (r / "link").symlink_to("a.txt"),
    lambda r: (r / "sub" / "new").write_bytes(b""),
])
def test_tree_hash_sees_changes(tmp_path: Path, change) -> None:  # type: ignore[no-untyped-def]
    root = make_tree(tmp_path / "t")
    before = hash_tree(root)
    change(root)
    assert hash_tree(root) != before


def test_symlinks_are_recorded_not_followed(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    outside = tmp_path / "outside"
    outside.write_bytes(b"1")
    (root / "l").symlink_to(outside)
    before = hash_tree(root)
    outside.write_bytes(b"2")  # the target's content is not part of the tree
    assert hash_tree(root) == before


def test_verify_detects_tampering(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    digest = hash_path(root)
    verify_path(root, digest)
    (root / "sub" / "b.bin").write_bytes(b"tampered")
    with pytest.raises(DataIntegrityError, match="content changed"):
        verify_path(root, digest)


def test_missing_and_special_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="cannot read data"):
        hash_path(tmp_path / "nope")
    root = make_tree(tmp_path / "t")
    os.mkfifo(root / "fifo")
    with pytest.raises(ServiceError, match="fifo: not a regular file"):
        hash_tree(root)
