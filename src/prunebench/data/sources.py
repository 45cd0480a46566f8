"""Where dataset files come from: explicit roots, the user cache, Debian's packages, or a download.

Search order for a dataset ``name`` (first folder holding every file with the right MD5 wins):
``$PRUNEBENCH_DATA/<name>``, the user cache ``$XDG_CACHE_HOME/prunebench/<name>``
(default ``~/.cache/prunebench/<name>``), ``/usr/share/datasets/<name>`` (Debian's
``dataset-*`` packages), and finally a download into the user cache.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from pathlib import Path

from prunebench.atomic import atomic_path
from prunebench.errors import UserError

DEBIAN_ROOT = Path("/usr/share/datasets")


def cache_dir() -> Path:
    """The user cache of prunebench (datasets, validation splits, corrupted test sets)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "prunebench"


def search_dirs(name: str) -> list[Path]:
    """Candidate folders for dataset ``name``, in search order."""
    dirs = []
    if os.environ.get("PRUNEBENCH_DATA"):
        dirs.append(Path(os.environ["PRUNEBENCH_DATA"]) / name)
    dirs += [cache_dir() / name, DEBIAN_ROOT / name]
    return dirs


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify(folder: Path, files: dict[str, str]) -> None:
    """Check every file exists in ``folder`` with its MD5; a mismatch is a UserError naming the file."""
    for fname, md5 in files.items():
        path = folder / fname
        if not path.is_file():
            raise UserError(f"dataset file missing: {path}; restore it or point PRUNEBENCH_DATA at a complete copy")
        got = md5sum(path)
        if got != md5:
            raise UserError(
                f"checksum mismatch for {path} (md5 {got}, expected {md5}); the file is corrupt or truncated: "
                "delete it and fetch it again"
            )


def download(url: str, dest: Path, md5: str) -> None:
    """Download ``url`` to ``dest`` atomically (temp file, verify, rename): nothing half-written is left."""
    try:
        with atomic_path(dest) as tmp:
            with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
                shutil.copyfileobj(resp, out)
            if md5sum(tmp) != md5:
                raise UserError(f"downloaded {url} but its checksum is wrong; try again later or fetch the file by hand "
                                f"into {dest.parent}")
    except OSError as e:
        raise UserError(f"cannot download {url} ({e}); fetch it by hand into {dest.parent} or set PRUNEBENCH_DATA") from None


def find_or_fetch(name: str, files: dict[str, str], urls: dict[str, str], root: Path | None = None) -> Path:
    """Return a folder holding all ``files`` (filename -> md5) of dataset ``name``, verified.

    With an explicit ``root`` only that folder is checked. Otherwise the standard folders are
    searched and, failing that, the files are downloaded from ``urls`` into the user cache.
    """
    if root is not None:
        verify(Path(root), files)
        return Path(root)
    for folder in search_dirs(name):
        if all((folder / f).is_file() for f in files):
            verify(folder, files)
            return folder
    target = cache_dir() / name
    for fname, md5 in files.items():
        if not (target / fname).is_file():
            download(urls[fname], target / fname, md5)
    verify(target, files)
    return target


def find_present(name: str, files: dict[str, str], root: Path | None = None) -> tuple[Path, list[str]]:
    """For datasets whose splits are optional: the first folder holding any of ``files``, and which.

    Present files are MD5-verified. Raises a UserError when no folder holds any of them.
    """
    folders = [Path(root)] if root is not None else search_dirs(name)
    for folder in folders:
        present = [f for f in files if (folder / f).is_file()]
        if present:
            verify(folder, {f: files[f] for f in present})
            return folder, present
    where = ", ".join(str(f) for f in folders)
    raise UserError(f"no {name} files found in {where}; put the IDX files in one of them or pass an explicit root")
