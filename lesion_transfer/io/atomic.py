"""Atomic writes: a reader never sees half a file, a failed job leaves nothing behind."""

import contextlib
import csv
import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lesion_transfer.errors import Refusal

FULL_BYTES = 1 << 20  # less than this free after a failed write: the disk is full


class DiskFull(Refusal):
    """A write that failed because its disk is full, whatever the writer called it."""


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary name keeps the final suffix (".nii.gz", ".tsv") so that writers which
    choose a format from the file name still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix if suffix is not None else "".join(path.suffixes)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp creates 0600 files; results are shared like any other file the user writes.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except Exception as error:
        # writers word a full disk their own way (torch: "unexpected pos"): ask the disk,
        # before the half-written file is removed and its space comes back
        free = shutil.disk_usage(path.parent).free
        if getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or free < FULL_BYTES:
            raise DiskFull(f"{path}: expected to write it, found no space left on the disk "
                           f"that holds {path.parent} ({free} bytes free; "
                           f"{type(error).__name__}: {error}); nothing half-written was kept: "
                           f"free some space and run the same command again") from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_tsv(rows: Any, path: str | Path, columns: Sequence[str] | None = None,
              float_format: str | None = None) -> None:
    """Rows as a tab-separated table with a header, atomically: dicts (`columns` in order,
    default every key, first seen first; a missing value is empty) or a pandas DataFrame
    (its columns; a missing value is empty); floats as `float_format` (for example ".6g")
    where given."""
    if hasattr(rows, "to_csv"):  # a DataFrame: pandas writes its own dtypes
        with atomic_path(path) as tmp:
            rows.to_csv(tmp, sep="\t", index=False, columns=columns,
                        float_format=f"%{float_format}" if float_format else None)
        return
    columns = list(columns) if columns else list(dict.fromkeys(k for row in rows for k in row))
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, dialect="excel-tab",
                                lineterminator="\n", restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (format(v, float_format) if float_format and isinstance(v, float)
                                 else v) for k, v in row.items()})


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_sha256(path: str | Path) -> str:
    """A file's SHA-256 (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
