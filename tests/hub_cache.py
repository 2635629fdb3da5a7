"""A Hugging Face Hub cache built on disk in the Hub's own layout, for offline loading tests.

``write_hub_file(cache, "DingXiaoH/UniRepLKNet", "unireplknet_a_in1k_224_acc77.03.pth", data)`` creates
``cache/models--DingXiaoH--UniRepLKNet/{blobs/<sha256>, snapshots/<rev>/<file>, refs/main}`` exactly as
``huggingface_hub`` lays it out, so ``hf_hub_download(..., cache_dir=cache)`` (or ``HF_HUB_CACHE=cache`` with
``HF_HUB_OFFLINE=1``) finds the file without a network.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

REVISION = "0123456789abcdef0123456789abcdef01234567"


def write_hub_file(cache: Path, repo_id: str, filename: str, data: bytes, revision: str = REVISION) -> Path:
    """Put ``data`` at ``filename`` of model repo ``repo_id`` in the cache ``cache``; returns the snapshot path."""
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    snap = repo_dir / "snapshots" / revision / filename
    snap.parent.mkdir(parents=True, exist_ok=True)
    if snap.exists() or snap.is_symlink():
        snap.unlink()
    os.symlink(os.path.relpath(blob, snap.parent), snap)
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(revision)
    return snap
