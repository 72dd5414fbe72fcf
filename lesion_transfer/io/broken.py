"""Files that exist but cannot be read: truncated by a full disk, corrupted, or not what
their name says. Readers raise BrokenFileError naming the file; the workflow's glue adds
which rule wrote it and how to write it again (lesion_transfer.workflow.rule_log)."""

import contextlib
from collections.abc import Iterator
from pathlib import Path

from lesion_transfer.errors import Refusal


class BrokenFileError(Refusal):
    def __init__(self, path: str | Path, detail: str):
        self.path = str(path)
        self.detail = detail
        super().__init__(f"{path}: {detail}")


@contextlib.contextmanager
def reading(path: str | Path, expected: str) -> Iterator[None]:
    """Turn any failure to read `path` (other than its absence) into a BrokenFileError."""
    try:
        yield
    except (BrokenFileError, FileNotFoundError):
        raise
    except Exception as error:  # every reader has its own exceptions for a bad file
        first_line = (str(error).splitlines() or [""])[0]
        raise BrokenFileError(path, f"expected {expected}, found a file that cannot be read "
                                    f"(truncated or corrupted?): {type(error).__name__}: "
                                    f"{first_line}") from None
