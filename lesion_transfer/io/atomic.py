"""Atomic writes: a reader never sees half a file, a failed job leaves nothing behind."""

import contextlib
import csv
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary name keeps the final suffix (".nii.gz", ".tsv") so that writers which
    choose a format from the file name still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix if suffix is not None else "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp creates 0600 files; results are shared like any other file the user writes.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_tsv(rows, path, columns=None, float_format=None):
    """Dicts as a tab-separated table with a header, atomically: `columns` in order (default:
    every key, first seen first; a missing value is empty); floats as `float_format` (for
    example ".6g") where given."""
    columns = list(columns) if columns else list(dict.fromkeys(k for row in rows for k in row))
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, dialect="excel-tab",
                                lineterminator="\n", restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (format(v, float_format) if float_format and isinstance(v, float)
                                 else v) for k, v in row.items()})


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
