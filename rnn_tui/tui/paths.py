"""Small path helpers for dialogs (sync, so async handlers never touch the filesystem)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["resolve_user_path"]


def resolve_user_path(raw: str) -> tuple[Path, bool]:
    """``~``-expanded path typed by the operator, and whether something is already there."""
    path = Path(raw.strip()).expanduser()
    return path, path.exists()
