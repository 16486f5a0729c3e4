"""The one exception type users see: its message is one line that says what is wrong and how to fix it.

:func:`user_errors` guards the entry point: it also turns what the operating system or the config reports
(a full disk, a folder that cannot be written, a mandatory key left unset) into that one line.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
NO_PERMISSION = (errno.EACCES, errno.EPERM, errno.EROFS)
NOT_A_FOLDER = (errno.ENOTDIR, errno.EEXIST, errno.EISDIR)


class AttnvizError(Exception):
    """A problem with the user's input or environment; shown as one line, no traceback unless debug=true."""


class SettingError(AttnvizError, ValueError):
    """A setting no run can use (an unknown colour map, a video too small for text, a position outside the
    sequence): one line to the user, a ValueError to code that calls the pure functions directly."""


class EncodeError(AttnvizError, RuntimeError):
    """ffmpeg could not write the video (disk full, unknown codec, ...); no video is left under the final name."""


def one_line(text: str) -> str:
    """Messages are logged as one line: tool output quoted in them (ffmpeg, transformers) has newlines."""
    return " ".join(str(text).split())


def os_error_message(err: OSError, run_dir: Path | None) -> str:
    """What went wrong with which file, and what to do; ``run_dir`` tells an output problem from an input one."""
    name = err.filename or ""
    what = one_line(err.strerror or str(err))
    is_output = run_dir is not None and bool(name) and _is_within(Path(name), run_dir)
    if err.errno in NO_SPACE:
        hint = "free space on that disk or set output_dir to a folder on another disk"
    elif is_output and err.errno in NO_PERMISSION + NOT_A_FOLDER:
        hint = "set output_dir (or hydra.run.dir) to a folder you can write"
    elif err.errno in NO_PERMISSION:
        hint = "make it readable (and writable, if it is an output) or point the key at another path"
    else:
        hint = "check that path"
    where = f"{name}: " if name else ""
    return f"{'cannot write' if is_output else 'file system error:'} {where}{what}; {hint}"


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def as_user_error(err: BaseException, run_dir: Path | None) -> AttnvizError | None:
    """The one-line error to show for ``err``, or None when it is a bug (keep its traceback)."""
    if isinstance(err, AttnvizError):
        return err if "\n" not in str(err) else type(err)(one_line(str(err)))
    if isinstance(err, OSError):
        return AttnvizError(os_error_message(err, run_dir))
    from omegaconf.errors import MissingMandatoryValue  # only the entry point meets it; renderers need no omegaconf

    if isinstance(err, MissingMandatoryValue):
        key = err.full_key or "a mandatory key"
        return AttnvizError(f"{key} is not set; pass {key}=<value> on the command line or in a config preset")
    return None


@contextmanager
def user_errors(run_dir: Path | None = None) -> Iterator[None]:
    """Expected failures inside leave as one-line AttnvizError (``run_dir`` tells an output problem from an input
    one); anything else is a bug and keeps its traceback."""
    try:
        yield
    except Exception as err:
        mapped = as_user_error(err, run_dir)
        if mapped is None or mapped is err:
            raise
        raise mapped from err


def ensure_writable(folder: Path) -> None:
    """Create ``folder`` and write a probe file in it: a read-only output fails now, not after generation."""
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / ".attnviz-write-probe.tmp"
    probe.write_bytes(b"")
    probe.unlink()
