"""Content hashes for DATA services: sha256 for a file, a deterministic tree hash for a dir.

Why our own tree hash: a directory has no canonical byte form, and archive formats (tar)
carry mtimes and owners that change the hash without changing the data.  The tree hash
``sha256-tree-v1`` is sha256 over one record per entry, sorted by the entry's relative
path (as UTF-8 bytes, ``/``-separated):

    b"F\\0" + path + b"\\0" + (b"x" if executable else b"-") + b"\\0" + sha256(content) + b"\\n"
    b"D\\0" + path + b"\\n"                        (every directory, so empty ones count)
    b"L\\0" + path + b"\\0" + link target + b"\\n"   (symlinks are recorded, never followed)

Names, contents, the executable bit, empty directories and symlink targets change the hash;
mtimes, owners and other mode bits do not.  Other file types (fifos, devices) are refused.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from rnn_tui.errors import ServiceError

__all__ = ["FILE_PREFIX", "TREE_PREFIX", "hash_file", "hash_tree", "hash_path", "verify_path",
           "DataIntegrityError"]

FILE_PREFIX = "sha256:"
TREE_PREFIX = "sha256-tree-v1:"
_CHUNK = 1 << 20


class DataIntegrityError(ServiceError):
    """A DATA service's content no longer matches the hash it was published with."""


def _file_digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.digest()


def hash_file(path: Path) -> str:
    return FILE_PREFIX + _file_digest(path).hex()


def hash_tree(root: Path) -> str:
    root = Path(root)
    records: list[tuple[bytes, bytes]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for name in dirnames + filenames:
            full = base / name
            rel = full.relative_to(root).as_posix().encode("utf-8", "surrogateescape")
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                records.append((rel, b"L\0" + rel + b"\0" + os.fsencode(os.readlink(full)) + b"\n"))
            elif stat.S_ISDIR(st.st_mode):
                records.append((rel, b"D\0" + rel + b"\n"))
            elif stat.S_ISREG(st.st_mode):
                mark = b"x" if st.st_mode & stat.S_IXUSR else b"-"
                records.append((rel, b"F\0" + rel + b"\0" + mark + b"\0" + _file_digest(full) + b"\n"))
            else:
                raise ServiceError(f"{full}: not a regular file, directory or symlink; "
                                   f"a DATA service cannot publish it")
    digest = hashlib.sha256()
    for _, record in sorted(records):
        digest.update(record)
    return TREE_PREFIX + digest.hexdigest()


def hash_path(path: Path) -> str:
    """The content hash of a file or directory; a clear error when it is neither."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise ServiceError(f"{path}: cannot read data ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        return hash_tree(path)
    if stat.S_ISREG(st.st_mode):
        return hash_file(path)
    raise ServiceError(f"{path}: not a regular file or directory")


def verify_path(path: Path, expected: str) -> None:
    """Raise ``DataIntegrityError`` unless ``path`` still hashes to ``expected``."""
    actual = hash_path(path)
    if actual != expected:
        raise DataIntegrityError(f"{path}: content changed since it was published "
                                 f"(expected {expected}, found {actual})")
