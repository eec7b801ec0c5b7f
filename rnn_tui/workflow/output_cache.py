"""The executor's resume cache: outputs of earlier jobs, by a content hash of what made them.

Why: a requester that resumes a run (Nextflow-style) asks executors to skip a job whose
image, parameters and inputs are identical to one they already ran.  The key is
``receipts.cache_key`` (image digest, params digest, input digests), so anything that could
change the outputs changes the key.  Why it is apart from the executor: it is only files
under one folder (``<key>/manifest.json`` and the outputs it names), nothing about jobs,
peers or containers.

Nothing read back is trusted: every cached file is re-hashed against its manifest before it
is reused, and a manifest naming a file outside its folder is refused (``confine_path``).
A store writes a sibling ``.tmp`` folder and renames it, so a reader never sees half of one.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from rnn_tui.errors import RnnError
from rnn_tui.services.model import Service
from rnn_tui.workflow.receipts import cache_key, params_digest
from rnn_tui.workflow.transfer import confine_path, hash_file

__all__ = ["Output", "OutputCache"]

Output = tuple[Path, int, str]
"""An output file as the executor keeps it: (path, size, sha256 hex)."""


class OutputCache:
    """Cached job outputs under ``root`` (the node's ``cache`` folder, beside its jobs)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def key(service: Service, env: Sequence[tuple[str, str]], args: Sequence[str],
            inputs: Mapping[str, str]) -> str:
        """The cache key of a job: its image, its parameters and its inputs' digests
        (``inputs`` maps ``<target>:<file name>`` to a sha256 hex)."""
        return cache_key(service.image_digest or service.content_hash or service.id,
                         params_digest(env, args), inputs)

    def folder(self, key: str) -> Path:
        return self.root / key

    async def lookup(self, key: str, wanted: Collection[str]) -> dict[str, Output] | None:
        """The outputs cached under ``key``, re-hashed, if they include every ``wanted``
        source and all match their manifest; otherwise ``None`` (run the job)."""
        folder = self.folder(key)
        try:
            manifest = json.loads(await asyncio.to_thread(
                (folder / "manifest.json").read_text, "utf-8"))
            if not set(wanted) <= set(manifest):
                return None
            outputs: dict[str, Output] = {}
            for source, entry in manifest.items():
                path = confine_path(folder, str(entry["file"]))
                size, digest = await asyncio.to_thread(hash_file, path)
                if (size, digest.hex()) != (entry["size"], entry["sha256"]):
                    return None
                outputs[source] = (path, size, digest.hex())
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RnnError):
            return None
        return outputs

    def store(self, key: str, outputs: Mapping[str, Output]) -> None:
        """Keep a job's outputs for later runs that opt in to resume (blocking: a thread)."""
        folder = self.folder(key)
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True, mode=0o700)
        manifest = {}
        for index, (source, (path, size, sha)) in enumerate(sorted(outputs.items())):
            name = f"{index}.out"
            shutil.copyfile(path, tmp / name)
            manifest[source] = {"file": name, "size": size, "sha256": sha}
        (tmp / "manifest.json").write_text(json.dumps(manifest, sort_keys=True), "utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
