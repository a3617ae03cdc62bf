"""Writing a run's outputs all-or-nothing, never over an input.

``OutputFolder(out, inputs)`` refuses an output folder or file that is one of the inputs, lies inside a
DICOM input folder, or is an existing file where a folder is needed. Files are written into a staging folder
beside ``out`` (same file system) and moved into ``out`` only when every one is complete, ``metrics.json``
last; on any failure the staging folder is removed and ``out`` is left exactly as it was. Files a run owns
(``owned``, e.g. ``REVIEW_OUTPUTS``) that an earlier run left and this run did not write (the report of an
earlier run made without ``--no-report``) are removed when the new files are published, so that nothing in
``out`` looks like a result of this run that is not. ``metrics.json`` carries the sha256 of every input file,
so a reader can tell which inputs it belongs to.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Union

PathLike = Union[str, Path]

#: Every file a review writes into its output folder (relative paths).
REVIEW_OUTPUTS = (
    "metrics.json",
    "metrics.csv",
    "report.html",
    "report.pdf",
    "review.mrb",
    "whatif_normalised/metrics.json",
)


class OutputError(ValueError):
    """An output location that would overwrite an input or cannot be written."""


def _resolved(p: PathLike) -> Path:
    return Path(p).expanduser().resolve()


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def check_not_an_input(out: PathLike, inputs: Iterable[Optional[PathLike]], what: str = "--out") -> None:
    """Refuse an output path that is an input file, or equal to / inside an input folder (a DICOM case)."""
    target = _resolved(out)
    for item in inputs:
        if not item:
            continue
        src = _resolved(item)
        if target == src:
            raise OutputError(f"{what} {out} is one of the inputs; inputs are never written. Choose another path.")
        if src.is_dir() and _inside(target, src):
            raise OutputError(
                f"{what} {out} lies inside the input folder {item}; inputs are never written. Write the outputs "
                "outside the case folder."
            )


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def input_hashes(inputs: Iterable[Optional[PathLike]]) -> Dict[str, str]:
    """sha256 of every input file (every file under an input folder), by path as given / relative to it."""
    out: Dict[str, str] = {}
    for item in inputs:
        if not item:
            continue
        p = Path(item)
        if p.is_dir():
            for f in sorted(q for q in p.rglob("*") if q.is_file()):
                out[str(Path(item) / f.relative_to(p))] = sha256_file(f)
        elif p.is_file():
            out[str(item)] = sha256_file(p)
    return out


class OutputFolder:
    """Stage a run's files and publish them together (see the module doc).

    with OutputFolder(out, inputs) as stage:
        write files into stage.path ...
    # here every file is in ``out``; after an exception nothing in ``out`` changed
    """

    LAST = "metrics.json"

    def __init__(self, out: PathLike, inputs: Iterable[Optional[PathLike]] = (), owned: Iterable[str] = ()) -> None:
        self.out = Path(out)
        self.inputs = [i for i in inputs if i]
        self.owned = [str(n) for n in owned]
        check_not_an_input(self.out, self.inputs)
        if self.out.exists() and not self.out.is_dir():
            raise OutputError(f"--out {out} is an existing file; give a folder for the outputs.")
        parent = _resolved(self.out).parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"--out {out}: its folder cannot be created ({exc.strerror}).") from None
        if not os.access(parent, os.W_OK | os.X_OK):
            raise OutputError(f"--out {out}: the folder {parent} is not writable; choose a folder you can write.")
        self.path: Optional[Path] = None
        self.published: List[Path] = []

    def __enter__(self) -> OutputFolder:
        parent = _resolved(self.out).parent
        try:
            self.path = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.partial-", dir=parent))
        except OSError as exc:
            raise OutputError(f"--out {self.out}: cannot write beside it ({exc.strerror}).") from None
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._publish()
        finally:
            if self.path is not None:
                shutil.rmtree(self.path, ignore_errors=True)

    def _publish(self) -> None:
        """Move the staged files into ``out``, metrics.json last; if any move fails, put back what was there."""
        assert self.path is not None
        staged = sorted(p for p in self.path.rglob("*") if p.is_file())
        staged.sort(key=lambda p: p.name == self.LAST and p.parent == self.path)  # metrics.json last
        backup = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.previous-", dir=_resolved(self.out).parent))
        moved: List[tuple] = []  # (dest, backup copy or None)
        written = {f.relative_to(self.path).as_posix() for f in staged}
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            for rel in self.owned:  # an earlier run's file that this run does not write: never left looking current
                dest = self.out / rel
                if rel in written or not dest.is_file():
                    continue
                saved = backup / rel
                saved.parent.mkdir(parents=True, exist_ok=True)
                os.replace(dest, saved)
                moved.append((dest, saved))
            for f in staged:
                rel = f.relative_to(self.path)
                dest = self.out / rel
                if dest.is_dir():
                    raise OutputError(f"--out {self.out}: {dest} is a folder; remove it or choose another --out.")
                dest.parent.mkdir(parents=True, exist_ok=True)
                saved = None
                if dest.exists():
                    saved = backup / rel
                    saved.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(dest, saved)
                moved.append((dest, saved))
                os.replace(f, dest)
            self.published = [self.out / f.relative_to(self.path) for f in staged]
        except (OSError, OutputError) as exc:
            for dest, saved in reversed(moved):  # roll back: the folder as it was
                try:
                    if saved is not None:
                        os.replace(saved, dest)
                    elif dest.exists():
                        dest.unlink()
                except OSError:
                    pass
            if isinstance(exc, OutputError):
                raise
            raise OutputError(f"--out {self.out}: the outputs could not be moved into place ({exc}).") from None
        finally:
            shutil.rmtree(backup, ignore_errors=True)


class OutputFile:
    """One output file written all-or-nothing: the writer writes ``stage.path`` (a hidden name beside ``out``
    with the same suffixes), moved over ``out`` only on success; never an input.

    with OutputFile(out, inputs) as stage:
        write(stage.path)
    """

    def __init__(self, out: PathLike, inputs: Iterable[Optional[PathLike]] = ()) -> None:
        self.out = Path(out)
        check_not_an_input(self.out, [i for i in inputs if i])
        if self.out.is_dir():
            raise OutputError(f"--out {out} is a folder; give a file name.")
        parent = _resolved(self.out).parent
        if not parent.is_dir():
            raise OutputError(f"--out {out}: the folder {parent} does not exist.")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise OutputError(f"--out {out}: the folder {parent} is not writable; choose a folder you can write.")
        self.path = parent / f".partial-{os.getpid()}-{self.out.name}"

    def __enter__(self) -> OutputFile:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                if not self.path.is_file():
                    raise OutputError(f"--out {self.out}: nothing was written.")
                os.replace(self.path, self.out)
        finally:
            if self.path.exists():
                self.path.unlink()
