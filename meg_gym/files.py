"""Files written whole or not at all, and checked when read back.

* :func:`atomic_write`: a temporary file in the same folder, flushed and fsynced, then renamed
  over the target (``os.replace`` is atomic on POSIX and Windows), and the folder fsynced: a
  kill at any point leaves the old file or the new one, never half of one.
* :func:`sha256_file`, :func:`record_sha256`, :func:`verify_sha256`: a folder's ``SHA256SUMS``
  (the ``sha256sum`` format, ``<hex>  <name>`` per line, so ``sha256sum -c SHA256SUMS`` checks it
  too) records the digest of the files beside it; a file that no longer matches is refused.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

__all__ = ["SUMS_FILE", "FileCheckError", "atomic_write", "read_sums", "record_sha256", "sha256_file",
           "verify_sha256"]

SUMS_FILE = "SHA256SUMS"
_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


class FileCheckError(ValueError):
    """A file that does not match the digest recorded for it (or has none where one is required)."""


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` whole or not at all (temporary file, fsync, rename, fsync of the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(path.parent)
    return path


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_sums(folder: str | Path) -> dict[str, str]:
    """``folder/SHA256SUMS`` as name -> hex digest ({} if there is none); a malformed line raises."""
    path = Path(folder) / SUMS_FILE
    if not path.is_file():
        return {}
    out: dict[str, str] = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        m = _LINE.match(line)
        if m is None:
            raise FileCheckError(f"{path} line {i + 1} is not '<sha256>  <file name>'")
        out[m.group(2)] = m.group(1)
    return out


def record_sha256(folder: str | Path, name: str) -> str:
    """Record ``folder/name``'s digest in ``folder/SHA256SUMS`` (atomically); returns the digest."""
    folder = Path(folder)
    sums = read_sums(folder)
    sums[name] = sha256_file(folder / name)
    atomic_write(folder / SUMS_FILE, "".join(f"{h}  {n}\n" for n, h in sorted(sums.items())))
    return sums[name]


def verify_sha256(path: str | Path, required: bool = True) -> None:
    """Check ``path`` against its folder's ``SHA256SUMS``: a mismatch, or no record when ``required``,
    raises :class:`FileCheckError` naming the file."""
    path = Path(path)
    sums = read_sums(path.parent)
    if path.name not in sums:
        if required:
            raise FileCheckError(f"{path} has no SHA-256 recorded in {path.parent / SUMS_FILE}: it cannot be "
                                 f"checked (restore the folder, or re-save the weights)")
        return
    got = sha256_file(path)
    if got != sums[path.name]:
        raise FileCheckError(f"{path} does not match its recorded SHA-256 ({got[:12]}... != "
                             f"{sums[path.name][:12]}...): the file is corrupted or was changed; restore it")
