"""Our own bad-input suite (issue 18): what a new user might feed ``sibspine``, each case run through the command
line as they would, in-process (``frontends.cli.main``), or in a child process where a native abort could kill
pytest. Every file is generated here from the phantoms: one ``sibspine demo --export-dicom`` export of the
thoracic phantom (copied per case and edited with pydicom), and its segmentation, dose and CT saved by
slicer-core (edited per case, or small NRRD files written by hand).

Every case asserts

* the exit code: 2, or, where the input is valid but unusual (files renamed, a flipped but consistent grid),
  the plain case's exit code and the same numbers as the plain case (``same``);
* no ``Traceback`` and no ``internal error`` in stdout/stderr;
* a message naming the thing: the file, option or structure (a specific substring, ``says``);
* every input unchanged (sha256 of every input file before and after);
* no partial or stale result: no ``.partial-``/``.previous-`` folder left beside ``--out``; on a refusal no
  ``metrics.json`` and an existing ``--out`` exactly as it was; an incomplete review writes a metrics.json
  that says ``incomplete`` (never ``pass``); nothing says "Verdict" on a refusal.

=======  =====  ======================================================================================
Family   Cases  What the cases are (each: exit code, no traceback, the thing named, inputs unchanged,
                no partial or stale output)
=======  =====  ======================================================================================
dicom       98  ``review --dicom`` on a copy of the export, edited with pydicom. Folder missing, empty, a
                file; CT, RTSTRUCT, RTDOSE or RTPLAN missing; truncated, garbled, zero-byte, random-byte
                files (CT slices, RTSTRUCT, RTDOSE, RTPLAN); CT gap, duplicate position, duplicated file,
                uneven spacing, tilt, header-only flipped orientation (both axes, rows), a slice of
                another size, spacing, frame or without position; frame-of-reference mismatch
                (RTSTRUCT, RTDOSE); two RTSTRUCTs, two plan doses, two CT series with nothing saying
                which; DoseUnits (CGY, RELATIVE, missing), DoseGridScaling (x100, x1000 with the report
                (the hang), 0, <0, NaN, inf, missing), GridFrameOffsetVector (short, out of order,
                uneven, missing), an all-zero, negative, BEAM or FRACTION dose, dose pixels short,
                wrong Rows, a dose grid away from the target; RTPLAN 3 fractions, 24 Gy, truncated, 0
                fractions, no fraction group, no or an
                impossible level in its label; RTSTRUCT empty ROIs, open and point contours, GTV twice, GTV + gtv,
                cord + alias, bow-tie, off-plane (warned) and non-planar contours, coordinates not
                triplets or NaN, two-point contours, contours of an undeclared ROI, no ROIs, CTV, GTV
                or canal missing. The same numbers as the plain case: junk files beside, files renamed
                or swapped, no extensions in subfolders, no preamble, reversed names or instance
                numbers, a symlink loop, a second CT series the RTSTRUCT does not reference, a
                mislabelled Modality, CGY with the scaling x100, absolute or descending frame offsets,
                a BEAM dose beside the plan dose, a second (older) RTPLAN, a cord alias; and, with a
                message naming the file, no RTPLAN, no Dose Summation Type, a level label other than
                --level.
nrrd        51  .seg.nrrd/.nrrd/.nhdr/.nii.gz through ``review``, ``dvh`` and ``volumes``: 2-D, truncated
                (raw: child process), huge extent (child), truncated or garbled gzip, a segment extent
                outside, a multi-byte type without 'endian' (child: it aborted), a dose or CT as the
                segmentation and the reverse, an empty CTV, all empty, GTV
                twice, GTV + gtv, NaN origin, zero spacing, not NRRD, empty, missing, a folder; dose
                NaN, inf, negative, zero, x100 read as Gy, 2-D, truncated, huge, detached data missing,
                a truncated NIfTI, no --dose-unit or 'endian'; CT truncated or 2-D; a .nrrd, a missing
                and a junk --mr-transform. The same numbers: double-typed labels, the dose in cGy with
                --dose-unit cGy, as float64, flipped or with permuted axes (consistent geometry), a
                segmentation without reference geometry (read on its own grid, said) with or without --ct.
options     88  --prv-margin-mm / --ptv-margin-mm: inf, nan, negative, > 50, text, 1e999, empty, wrong
                count, semicolons (review, volumes, demo), 0 mm (a NON-PROTOCOL REVIEW); --level X9,
                T13, C0, S6, empty, a list, a number (t8 and L2-T12 are read); --role without '=',
                without a role, unknown, derived, absent, ROI:99, ID: on DICOM, the cord as GTV;
                --metric D150%, words, V-5Gy, no unit, NaN, inf, empty; --structure unknown; --dose-unit
                against the RTDOSE's; --protocol unknown id, negative margin, no constraints, negative
                prescription, 0 fractions, infinite margin, D150%, unknown structure, broken JSON,
                empty, an array, a folder, a DICOM file, an edited copy (NON-PROTOCOL); options that
                exclude each other or have no effect (--dicom with --segmentation, --dose-unit, --mr,
                --register; --mr without --ct; --register with --mr-transform; volumes inputs); argparse
                errors (unknown option, bad choices, missing values, no command).
outputs     25  --out under a file, in /proc, an existing file (review, demo), the case folder, inside
                it, its RTDOSE; volumes over the case's RTSTRUCT, inside the case, over its own input;
                review over its segmentation or dose; a full disk (ENOSPC from the PDF, metrics.json,
                scene, .seg.nrrd and RTSTRUCT writers); a rerun into a folder holding an earlier PASS
                that then fails (bad input, a crash with its log, a full disk) or is incomplete (the
                earlier report removed); a folder where metrics.json goes; volumes into a missing
                folder, onto a folder, under a file.
serve        9  a busy port, --port 70000 / -1 / text, an unknown case or variant, --host 0.0.0.0
                without --allow-remote, a broken protocol file, a DICOM case with level T13: exit 2
                before the server starts.
=======  =====  ======================================================================================

The total is printed at the end of the run (``conftest.pytest_terminal_summary``).
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import dicom_fixtures as fx
import numpy as np
import pydicom
import pytest

from conftest import REPO

pytestmark = pytest.mark.mrml

from SIBSpineSBRTLib.frontends.cli import main  # noqa: E402

# -- the checks every case makes -------------------------------------------------------------------------------


def tree_hash(path: Path) -> str:
    """sha256 over every file under ``path`` (names and bytes), or of the file ``path``."""
    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()):
            h.update(str(f.relative_to(path)).encode())
            h.update(f.read_bytes())
    elif path.exists():
        h.update(path.read_bytes())
    else:
        return "absent"
    return h.hexdigest()


def leftovers(folder: Path) -> List[str]:
    if not folder.is_dir():
        return []
    return [p.name for p in folder.iterdir() if ".partial-" in p.name or ".previous-" in p.name]


@dataclass
class Expect:
    """One case: the command line, its inputs and output, and what must come of it.

    kind: ``refused`` (exit 2, nothing written), ``incomplete`` (exit 2, metrics.json says incomplete or fail),
    ``same`` (the plain case's exit code and numbers), ``ok`` (exit 0, for commands that only print)."""

    argv: Sequence
    inputs: Sequence[Path]
    out: Optional[Path]
    kind: str = "refused"
    says: Sequence[str] = ()
    rc: int = 2
    plain: str = "dicom"
    child: bool = False  # run in a child process (a native abort must not kill pytest)
    internal: bool = False  # an "internal error: ... please report" is the expected message
    after: Optional[Callable[[Result], None]] = None  # a further check of the outcome


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def run_cli(argv, capsys, child=False) -> Result:
    argv = [str(a) for a in argv]
    if child:
        exe = Path(sys.executable).with_name("sibspine")
        proc = subprocess.run([str(exe), *argv], cwd=REPO, capture_output=True, text=True, timeout=300)
        return Result(proc.returncode, proc.stdout, proc.stderr)
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse: exit 2 with its usage message
        rc = exc.code
    cap = capsys.readouterr()
    return Result(rc, cap.out, cap.err)


def metrics_rows(doc) -> Dict:
    return {(r["structure"], r["metric"]): r for r in doc["rows"]}


def assert_same_numbers(doc, plain) -> None:
    assert doc["verdict"] == plain["verdict"]
    got, want = metrics_rows(doc), metrics_rows(plain)
    assert set(got) == set(want)
    for key, row in want.items():
        assert got[key]["status"] == row["status"], key
        assert got[key]["judged_value"] == row["judged_value"], key
        if row["value"] is not None:
            assert got[key]["value"] == pytest.approx(row["value"], abs=2e-3), key


def check(e: Expect, capsys, plains=None) -> Result:
    inputs = [Path(p) for p in e.inputs]
    before = {p: tree_hash(p) for p in inputs}
    out = Path(e.out) if e.out else None
    out_before = tree_hash(out) if out is not None else None
    r = run_cli(e.argv, capsys, e.child)
    text = r.text
    where = f"\nargv: {' '.join(map(str, e.argv))}\nrc: {r.rc}\nstderr: {r.err[-3000:]}\nstdout: {r.out[-1500:]}"
    assert "Traceback" not in text, where
    if not e.internal:
        assert "internal error" not in text, where
    assert r.rc == e.rc, where
    haystack = r.err if e.kind == "refused" else text
    for s in e.says:
        assert s in haystack, f"message does not name {s!r}" + where
    for p, h in before.items():
        assert tree_hash(p) == h, f"input {p} was modified" + where
    if out is not None:
        assert leftovers(out.parent) == [], where
        metrics = out / "metrics.json" if not out.suffix or out.is_dir() else None
        if e.kind == "refused":
            assert tree_hash(out) == out_before, "the existing output changed on a refusal" + where
            assert "Verdict" not in r.out, where
        elif e.kind == "incomplete":
            doc = json.loads(metrics.read_text())
            assert doc["verdict"] in ("incomplete", "fail"), doc["verdict"]
        elif e.kind == "same":
            doc = json.loads(metrics.read_text())
            assert_same_numbers(doc, plains[e.plain])
        elif e.kind == "warns":
            assert metrics.is_file(), where
        elif e.kind == "nonprotocol":
            doc = json.loads(metrics.read_text())
            assert doc["deviations"], doc
    if e.after is not None:
        e.after(r)
    return r


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """An internal error's log goes to the user's cache: here, this case's own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


# -- the DICOM export of the thoracic phantom -------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The thoracic phantom as DICOM (without its MR series, which no case here needs) and its plain review."""
    root = tmp_path_factory.mktemp("bad-inputs")
    full = root / "export"
    assert main(["demo", "--export-dicom", str(full), "--out", str(root / "demo"), "--no-report"]) == 0
    plain = root / "plain"
    shutil.copytree(full, plain, ignore=shutil.ignore_patterns("MR*"))
    assert main(["review", "--dicom", str(plain), "--level", "T8", "--no-report", "--out", str(root / "rv")]) == 0
    return {
        "case": plain,
        "full": full,
        "run": root / "rv",
        "metrics": json.loads((root / "rv" / "metrics.json").read_text()),
    }


@dataclass
class DicomEnv:
    tmp: Path
    case: Path
    out: Path

    def argv(self, *extra, level="T8", report=False):
        level_args = ["--level", level] if level else []
        return ["review", "--dicom", self.case, *level_args, *([] if report else ["--no-report"])] + [
            "--out",
            self.out,
            *extra,
        ]

    @property
    def cts(self) -> List[Path]:
        return sorted((self.case / "CT").glob("*.dcm"))

    @property
    def rtstruct(self) -> Path:
        return self.case / "RTSTRUCT.dcm"

    @property
    def rtdose(self) -> Path:
        return self.case / "RTDOSE.dcm"

    @property
    def rtplan(self) -> Path:
        return self.case / "RTPLAN.dcm"

    def expect(self, kind="refused", says=(), *extra, level="T8", **kw) -> Expect:
        kw.setdefault("rc", 0 if kind in ("same", "warns", "ok") else 2)
        return Expect(self.argv(*extra, level=level), [self.case], self.out, kind, tuple(map(str, says)), **kw)


def edit(path: Path, fn: Callable) -> None:
    ds = pydicom.dcmread(path)
    fn(ds)
    fx.save(ds, path)


def edit_all(paths, fn) -> None:
    for p in paths:
        edit(p, fn)


def new_uid() -> str:
    return fx.uid()


def roi(ds, name):
    """(StructureSetROI item, ROIContour item) of ROI ``name``."""
    number = next(r.ROINumber for r in ds.StructureSetROISequence if r.ROIName == name)
    contour = next(c for c in ds.ROIContourSequence if c.ReferencedROINumber == number)
    return next(r for r in ds.StructureSetROISequence if r.ROINumber == number), contour


def drop_roi(ds, name) -> None:
    number = roi(ds, name)[0].ROINumber
    ds.StructureSetROISequence = [r for r in ds.StructureSetROISequence if r.ROINumber != number]
    ds.ROIContourSequence = [r for r in ds.ROIContourSequence if r.ReferencedROINumber != number]
    ds.RTROIObservationsSequence = [r for r in ds.RTROIObservationsSequence if r.ReferencedROINumber != number]


def copy_roi(ds, name, new_name) -> None:
    """A second ROI with the contours of ``name``."""
    import copy

    item, contour = roi(ds, name)
    number = max(int(r.ROINumber) for r in ds.StructureSetROISequence) + 1
    item2, contour2 = copy.deepcopy(item), copy.deepcopy(contour)
    item2.ROINumber, item2.ROIName, contour2.ReferencedROINumber = number, new_name, number
    ds.StructureSetROISequence.append(item2)
    ds.ROIContourSequence.append(contour2)
    obs = copy.deepcopy(ds.RTROIObservationsSequence[0])
    obs.ObservationNumber, obs.ReferencedROINumber = number, number
    ds.RTROIObservationsSequence.append(obs)


def dose_frames(ds) -> np.ndarray:
    return ds.pixel_array.astype(np.int64)


def set_dose_frames(ds, frames: np.ndarray, signed=False) -> None:
    dtype = np.int32 if signed else np.uint32
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = np.ascontiguousarray(frames.astype(dtype)).tobytes()
    ds.NumberOfFrames = frames.shape[0]


def truncate(path: Path, keep) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])


# Each DICOM case: a function of the environment that edits the copied case and returns what must happen.
DICOM: Dict[str, Callable[[DicomEnv], Expect]] = {}
XFAIL: Dict[str, str] = {}


def case(registry, name=None, xfail=None):
    def register(fn):
        key = name or fn.__name__.split("_", 1)[1]
        assert key not in registry, key
        registry[key] = fn
        if xfail:
            XFAIL[key] = xfail
        return fn

    return register


# ---- folders and files missing ----


@case(DICOM)
def d_missing_folder(env):
    shutil.rmtree(env.case)
    return env.expect("refused", [env.case])


@case(DICOM)
def d_empty_folder(env):
    shutil.rmtree(env.case)
    env.case.mkdir()
    return env.expect("refused", [env.case])


@case(DICOM)
def d_dicom_is_a_file(env):
    e = env.expect("refused", [env.rtdose])
    e.argv[2] = env.rtdose
    return e


@case(DICOM)
def d_no_ct(env):
    shutil.rmtree(env.case / "CT")
    return env.expect("refused", ["no CT"])


@case(DICOM)
def d_no_rtstruct(env):
    env.rtstruct.unlink()
    return env.expect("refused", ["RTSTRUCT"])


@case(DICOM)
def d_no_rtdose(env):
    env.rtdose.unlink()
    return env.expect("incomplete", ["dose"])


@case(DICOM)
def d_no_rtplan(env):
    env.rtplan.unlink()  # as a .seg.nrrd review: the fractionation is not checked, and a note says so
    return env.expect("same", ["No RTPLAN was read"])


# ---- corrupt, truncated, garbled ----


@case(DICOM)
def d_rtstruct_truncated(env):
    truncate(env.rtstruct, 0.5)
    return env.expect("refused", [env.rtstruct, "truncated"])


@case(DICOM)
def d_rtstruct_garbage(env):
    env.rtstruct.write_bytes(b"\0" * 128 + b"DICM" + os.urandom(4000))
    return env.expect("refused", ["no readable RTSTRUCT", env.rtstruct])


@case(DICOM)
def d_rtstruct_zero_bytes(env):
    env.rtstruct.write_bytes(b"")
    return env.expect("refused", ["no readable RTSTRUCT", env.rtstruct])


@case(DICOM)
def d_rtdose_truncated(env):
    truncate(env.rtdose, 0.5)
    return env.expect("incomplete", [env.rtdose])


@case(DICOM)
def d_rtdose_garbage(env):
    env.rtdose.write_bytes(b"\0" * 128 + b"DICM" + os.urandom(4000))
    return env.expect("incomplete", [env.rtdose])


@case(DICOM)
def d_rtplan_truncated(env):
    truncate(env.rtplan, 0.5)  # the plan's fractionation could not be checked: never a pass
    return env.expect("incomplete", [env.rtplan, "truncated", "could not be read"])


@case(DICOM)
def d_ct_slice_garbled_header(env):
    bad = env.cts[40]
    truncate(bad, 300)  # cut before its series UID: the gap cannot be blamed on a series
    return env.expect("refused", [bad])


@case(DICOM)
def d_ct_slice_cut_at_stack_end(env):
    bad = env.cts[-1]
    truncate(bad, 3000)
    return env.expect("refused", [bad])


@case(DICOM)
def d_ct_slice_pixels_cut(env):
    bad = env.cts[30]
    truncate(bad, bad.stat().st_size - 5000)
    return env.expect("refused", [bad])


@case(DICOM)
def d_ct_slice_zero_bytes(env):
    bad = env.cts[50]
    bad.write_bytes(b"")
    return env.expect("refused", [bad])


@case(DICOM)
def d_ct_slice_random_bytes(env):
    bad = env.cts[20]
    bad.write_bytes(os.urandom(bad.stat().st_size))
    return env.expect("refused", [bad])


# ---- valid but unusual: the same numbers ----


@case(DICOM)
def d_junk_files_beside(env):
    (env.case / "notes.txt").write_text("plan approved\n")
    (env.case / ".DS_Store").write_bytes(os.urandom(600))
    (env.case / "CT" / "Thumbs.db").write_bytes(b"\0" * 100)
    return env.expect("same")


@case(DICOM)
def d_files_renamed_swapped(env):
    tmp = env.case / "x.tmp"
    env.rtstruct.rename(tmp)
    env.rtdose.rename(env.rtstruct)
    tmp.rename(env.rtdose)
    env.rtplan.rename(env.case / "CT" / "zzz.dcm")
    return env.expect("same")


@case(DICOM)
def d_files_without_extension_in_subfolders(env):
    deep = env.case / "a" / "b"
    deep.mkdir(parents=True)
    for i, f in enumerate(env.cts):
        f.rename(deep / f"IM{i:05d}")
    env.rtdose.rename(env.case / "a" / "DOSE")
    return env.expect("same")


@case(DICOM)
def d_no_preamble(env):
    fx.rewrite_without_preamble(env.rtstruct)
    fx.rewrite_without_preamble(env.rtplan)
    return env.expect("same")


@case(DICOM)
def d_ct_names_reversed(env):
    files = env.cts
    for f in files:
        f.rename(f.with_name("t_" + f.name))
    tmp = sorted((env.case / "CT").glob("t_*"))
    for f, dst in zip(tmp, files[::-1]):
        f.rename(dst)
    return env.expect("same")


@case(DICOM)
def d_ct_instance_numbers_reversed(env):
    n = len(env.cts)
    for i, f in enumerate(env.cts):
        edit(f, lambda ds, i=i: setattr(ds, "InstanceNumber", n - i))
    return env.expect("same")


@case(DICOM)
def d_symlink_loop(env):
    (env.case / "loop").symlink_to(env.case, target_is_directory=True)
    return env.expect("same")


@case(DICOM)
def d_duplicated_ct_file(env):
    shutil.copy(env.cts[10], env.case / "CT" / "copy_of_slice.dcm")  # the same instance twice
    return env.expect("refused", ["copy_of_slice.dcm", env.cts[10].name, "the same SOP instance twice"])


# ---- CT series geometry ----


@case(DICOM)
def d_ct_gap(env):
    env.cts[44].unlink()
    return env.expect("refused", ["CT series", "missing"])


@case(DICOM)
def d_ct_duplicate_position(env):
    src = env.cts[44]
    dst = env.case / "CT" / "dup.dcm"
    shutil.copy(src, dst)
    edit(dst, lambda ds: setattr(ds, "SOPInstanceUID", new_uid()))
    return env.expect("refused", ["CT series"])


@case(DICOM)
def d_ct_uneven_spacing(env):
    def shift(ds):
        ds.ImagePositionPatient = [
            ds.ImagePositionPatient[0],
            ds.ImagePositionPatient[1],
            ds.ImagePositionPatient[2] + 0.6,
        ]

    edit(env.cts[44], shift)
    return env.expect("refused", ["CT series"])


@case(DICOM)
def d_ct_tilted(env):
    c, s = np.cos(np.radians(5)), np.sin(np.radians(5))

    def tilt(ds):
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, float(c), float(s)]

    edit_all(env.cts, tilt)
    return env.expect("refused", ["CT series"])


@case(DICOM)
def d_ct_orientation_flipped_header_only(env):
    edit_all(
        env.cts, lambda ds: setattr(ds, "ImageOrientationPatient", [-float(v) for v in ds.ImageOrientationPatient])
    )
    return env.expect("refused", ["Image Orientation (Patient)", "flipped"])


@case(DICOM)
def d_ct_row_direction_flipped(env):
    def flip(ds):
        iop = [float(v) for v in ds.ImageOrientationPatient]
        ds.ImageOrientationPatient = [-v for v in iop[:3]] + iop[3:]

    edit_all(env.cts, flip)
    return env.expect("refused", ["Image Orientation (Patient)"])


@case(DICOM)
def d_ct_slice_other_size(env):
    bad = env.cts[60]

    def smaller(ds):
        arr = ds.pixel_array[:-4, :]
        ds.Rows = arr.shape[0]
        ds.PixelData = arr.tobytes()

    edit(bad, smaller)
    return env.expect("refused", ["CT series"])


@case(DICOM)
def d_ct_slice_other_pixel_spacing(env):
    edit(env.cts[60], lambda ds: setattr(ds, "PixelSpacing", [1.2, 1.2]))
    return env.expect("refused", ["CT series"])


@case(DICOM)
def d_ct_slice_without_position(env):
    bad = env.cts[60]
    edit(bad, lambda ds: delattr(ds, "ImagePositionPatient"))
    return env.expect("refused", [bad.name])


@case(DICOM)
def d_ct_slice_other_frame(env):
    edit(env.cts[60], lambda ds: setattr(ds, "FrameOfReferenceUID", new_uid()))
    return env.expect("refused", ["frame of reference"])


@case(DICOM)
def d_ct_labelled_mr(env):
    edit_all(env.cts, lambda ds: setattr(ds, "Modality", "MR"))  # files are known by their SOP class
    return env.expect("same")


@case(DICOM)
def d_rtdose_labelled_ct(env):
    edit(env.rtdose, lambda ds: setattr(ds, "Modality", "CT"))
    return env.expect("same")


@case(DICOM)
def d_rtstruct_labelled_rtplan(env):
    edit(env.rtstruct, lambda ds: setattr(ds, "Modality", "RTPLAN"))
    return env.expect("same")


# ---- frames of reference and series choice ----


@case(DICOM)
def d_rtstruct_other_frame(env):
    def other(ds):
        for item in ds.ReferencedFrameOfReferenceSequence:
            item.FrameOfReferenceUID = new_uid()
        for item in ds.StructureSetROISequence:
            item.ReferencedFrameOfReferenceUID = new_uid()

    edit(env.rtstruct, other)
    return env.expect("refused", [env.rtstruct, "frame of reference"])


@case(DICOM)
def d_rtdose_other_frame(env):
    edit(env.rtdose, lambda ds: setattr(ds, "FrameOfReferenceUID", new_uid()))
    return env.expect("refused", [env.rtdose, "frame of reference"])


@case(DICOM)
def d_two_rtstructs(env):
    dst = env.case / "RTSTRUCT_copy.dcm"
    shutil.copy(env.rtstruct, dst)
    edit(dst, lambda ds: setattr(ds, "SOPInstanceUID", new_uid()))
    return env.expect("refused", ["2 RTSTRUCTs", dst.name, "out of the case folder"])


@case(DICOM)
def d_two_plan_doses(env):
    dst = env.case / "RTDOSE_copy.dcm"
    shutil.copy(env.rtdose, dst)
    edit(dst, lambda ds: setattr(ds, "SOPInstanceUID", new_uid()))
    return env.expect("incomplete", ["2 plan doses", dst.name, "out of the case folder"])


def copy_ct_series(env, folder="CT2"):
    dst = env.case / folder
    dst.mkdir()
    series = new_uid()
    for f in env.cts:
        g = dst / f.name
        shutil.copy(f, g)

        def renew(ds):
            ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.SeriesNumber = series, new_uid(), 77

        edit(g, renew)


@case(DICOM)
def d_second_ct_series_referenced_one_wins(env):
    copy_ct_series(env)
    return env.expect("same")


@case(DICOM)
def d_second_ct_series_nothing_says_which(env):
    copy_ct_series(env)

    def unreference(ds):
        for fr in ds.ReferencedFrameOfReferenceSequence:
            for st in fr.RTReferencedStudySequence:
                for se in st.RTReferencedSeriesSequence:
                    se.SeriesInstanceUID = new_uid()

    edit(env.rtstruct, unreference)
    return env.expect("refused", ["2 CT series", "out of the case folder"])


# ---- RTDOSE values and grid ----


@case(DICOM)
def d_dose_units_cgy(env):
    edit(env.rtdose, lambda ds: setattr(ds, "DoseUnits", "CGY"))
    return env.expect("refused", [env.rtdose, "unit error"])


@case(DICOM)
def d_dose_units_cgy_scaled_x100(env):
    def cgy(ds):
        ds.DoseUnits = "CGY"
        ds.DoseGridScaling = float(ds.DoseGridScaling) * 100

    edit(env.rtdose, cgy)
    return env.expect("same")


@case(DICOM)
def d_dose_units_relative(env):
    edit(env.rtdose, lambda ds: setattr(ds, "DoseUnits", "RELATIVE"))
    return env.expect("incomplete", [env.rtdose, "RELATIVE"])


@case(DICOM)
def d_dose_units_missing(env):
    edit(env.rtdose, lambda ds: delattr(ds, "DoseUnits"))
    return env.expect("incomplete", [env.rtdose, "DoseUnits"])


@case(DICOM)
def d_dose_scaling_x100(env):
    edit(env.rtdose, lambda ds: setattr(ds, "DoseGridScaling", float(ds.DoseGridScaling) * 100))
    return env.expect("refused", [env.rtdose, "unit error"])


@case(DICOM)
def d_dose_scaling_x1000_with_report(env):
    """The issue's hang: a dose x1000 spent minutes drawing the report; now refused at once."""
    edit(env.rtdose, lambda ds: setattr(ds, "DoseGridScaling", float(ds.DoseGridScaling) * 1000))
    e = env.expect("refused", [env.rtdose])
    e.argv = env.argv(report=True)
    return e


@case(DICOM)
def d_dose_scaling_zero(env):
    edit(env.rtdose, lambda ds: setattr(ds, "DoseGridScaling", 0.0))
    return env.expect("incomplete", [env.rtdose, "DoseGridScaling"])


@case(DICOM)
def d_dose_scaling_negative(env):
    edit(env.rtdose, lambda ds: setattr(ds, "DoseGridScaling", -float(ds.DoseGridScaling)))
    return env.expect("incomplete", [env.rtdose, "DoseGridScaling"])


@case(DICOM)
def d_dose_scaling_nan(env):
    edit(env.rtdose, lambda ds: setattr(ds, "DoseGridScaling", "NaN"))
    return env.expect("incomplete", [env.rtdose, "DoseGridScaling"])


@case(DICOM)
def d_dose_scaling_inf(env):
    edit(env.rtdose, lambda ds: setattr(ds, "DoseGridScaling", "inf"))
    return env.expect("incomplete", [env.rtdose, "DoseGridScaling"])


@case(DICOM)
def d_dose_scaling_missing(env):
    edit(env.rtdose, lambda ds: delattr(ds, "DoseGridScaling"))
    return env.expect("incomplete", [env.rtdose, "DoseGridScaling"])


@case(DICOM)
def d_gfov_wrong_length(env):
    edit(env.rtdose, lambda ds: setattr(ds, "GridFrameOffsetVector", list(ds.GridFrameOffsetVector)[:-3]))
    return env.expect("incomplete", [env.rtdose, "GridFrameOffsetVector"])


@case(DICOM)
def d_gfov_not_monotonic(env):
    def swap(ds):
        g = [float(v) for v in ds.GridFrameOffsetVector]
        g[10], g[11] = g[11], g[10]
        ds.GridFrameOffsetVector = g

    edit(env.rtdose, swap)
    return env.expect("incomplete", [env.rtdose, "GridFrameOffsetVector"])


@case(DICOM)
def d_gfov_uneven(env):
    def uneven(ds):
        g = [float(v) for v in ds.GridFrameOffsetVector]
        g[10] += 0.7
        ds.GridFrameOffsetVector = g

    edit(env.rtdose, uneven)
    return env.expect("incomplete", [env.rtdose, "GridFrameOffsetVector"])


@case(DICOM)
def d_gfov_missing(env):
    edit(env.rtdose, lambda ds: delattr(ds, "GridFrameOffsetVector"))
    return env.expect("incomplete", [env.rtdose, "GridFrameOffsetVector"])


@case(DICOM)
def d_gfov_absolute(env):
    """Offsets that start at the first frame's z (the 'absolute' form the standard also allows): same dose."""

    def absolute(ds):
        z0 = float(ds.ImagePositionPatient[2])
        ds.GridFrameOffsetVector = [z0 + float(v) for v in ds.GridFrameOffsetVector]

    edit(env.rtdose, absolute)
    return env.expect("same")


@case(DICOM)
def d_gfov_descending(env):
    """Frames stored top to bottom with negative offsets: the same dose in space."""

    def descending(ds):
        g = np.array([float(v) for v in ds.GridFrameOffsetVector])
        frames = dose_frames(ds)[::-1]
        ipp = [float(v) for v in ds.ImagePositionPatient]
        ipp[2] += g[-1]
        ds.ImagePositionPatient = ipp
        ds.GridFrameOffsetVector = [float(v) for v in (g[::-1] - g[-1])]
        set_dose_frames(ds, frames)

    edit(env.rtdose, descending)
    return env.expect("same")


@case(DICOM)
def d_dose_all_zero(env):
    edit(env.rtdose, lambda ds: set_dose_frames(ds, np.zeros_like(dose_frames(ds))))
    return env.expect("incomplete", [env.rtdose, "zero everywhere"])


@case(DICOM)
def d_dose_negative_values(env):
    def negative(ds):
        f = dose_frames(ds)
        f[:, :5, :5] = -200000
        set_dose_frames(ds, f, signed=True)

    edit(env.rtdose, negative)
    return env.expect("incomplete", [env.rtdose, "negative values"])


@case(DICOM)
def d_dose_beam(env):
    edit(env.rtdose, lambda ds: setattr(ds, "DoseSummationType", "BEAM"))
    return env.expect("incomplete", [env.rtdose, "BEAM"])


@case(DICOM)
def d_dose_fraction(env):
    edit(env.rtdose, lambda ds: setattr(ds, "DoseSummationType", "FRACTION"))
    return env.expect("incomplete", [env.rtdose, "FRACTION"])


@case(DICOM)
def d_dose_summation_type_missing(env):
    edit(env.rtdose, lambda ds: delattr(ds, "DoseSummationType"))
    return env.expect("same", [env.rtdose, "Dose Summation Type is not stated", "only dose in the folder"])


@case(DICOM)
def d_beam_dose_beside_plan_dose(env):
    dst = env.case / "RTDOSE_beam1.dcm"
    shutil.copy(env.rtdose, dst)

    def beam(ds):
        ds.SOPInstanceUID, ds.DoseSummationType = new_uid(), "BEAM"
        ds.DoseGridScaling = float(ds.DoseGridScaling) / 3

    edit(dst, beam)
    return env.expect("same")


@case(DICOM)
def d_dose_pixels_short(env):
    edit(env.rtdose, lambda ds: setattr(ds, "PixelData", ds.PixelData[: len(ds.PixelData) // 2]))
    return env.expect("incomplete", [env.rtdose])


@case(DICOM)
def d_dose_rows_wrong(env):
    edit(env.rtdose, lambda ds: setattr(ds, "Rows", ds.Rows + 3))
    return env.expect("incomplete", [env.rtdose])


@case(DICOM)
def d_dose_grid_far_away(env):
    def away(ds):
        ipp = [float(v) for v in ds.ImagePositionPatient]
        ds.ImagePositionPatient = [ipp[0] + 400, ipp[1], ipp[2]]

    edit(env.rtdose, away)
    return env.expect("incomplete", ["outside the dose grid"])


# ---- RTPLAN ----


@case(DICOM)
def d_plan_three_fractions(env):
    edit(env.rtplan, lambda ds: setattr(ds.FractionGroupSequence[0], "NumberOfFractionsPlanned", 3))
    return env.expect("incomplete", ["3 fractions"])


@case(DICOM)
def d_plan_zero_fractions(env):
    edit(env.rtplan, lambda ds: setattr(ds.FractionGroupSequence[0], "NumberOfFractionsPlanned", 0))
    return env.expect("incomplete", [env.rtplan, "Number of Fractions Planned is 0"])


@case(DICOM)
def d_plan_no_fraction_group(env):
    edit(env.rtplan, lambda ds: delattr(ds, "FractionGroupSequence"))
    return env.expect("incomplete", [env.rtplan, "states no number of fractions"])


@case(DICOM)
def d_plan_other_prescription(env):
    edit(env.rtplan, lambda ds: setattr(ds.DoseReferenceSequence[0], "TargetPrescriptionDose", 24.0))
    return env.expect("incomplete", ["24 Gy"])


@case(DICOM)
def d_plan_label_other_level(env):
    edit(env.rtplan, lambda ds: setattr(ds, "RTPlanLabel", "SIB level T10"))
    return env.expect("same", ["states level T10, but level T8 was given"])


@case(DICOM)
def d_plan_label_without_level_and_no_option(env):
    edit(env.rtplan, lambda ds: setattr(ds, "RTPlanLabel", "SBRT spine"))
    return env.expect("refused", ["--level"], level=None)


@case(DICOM)
def d_plan_label_impossible_level(env):
    edit(env.rtplan, lambda ds: setattr(ds, "RTPlanLabel", "SIB level T13"))
    return env.expect("refused", ["'SIB level T13'", "--level"], level=None)


@case(DICOM)
def d_two_plans_dose_references_one(env):
    dst = env.case / "RTPLAN_old.dcm"
    shutil.copy(env.rtplan, dst)

    def old(ds):
        ds.SOPInstanceUID = new_uid()
        ds.FractionGroupSequence[0].NumberOfFractionsPlanned = 3

    edit(dst, old)
    return env.expect("same")


# ---- RTSTRUCT contents ----


@case(DICOM)
def d_roi_ctv_empty(env):
    edit(env.rtstruct, lambda ds: delattr(roi(ds, "CTV")[1], "ContourSequence"))
    return env.expect("incomplete", ["ROI 'CTV' (ROI number 2) has no closed planar contour"])


@case(DICOM)
def d_roi_cord_empty(env):
    edit(env.rtstruct, lambda ds: delattr(roi(ds, "SpinalCord")[1], "ContourSequence"))
    return env.expect("incomplete", ["SpinalCord"])


@case(DICOM)
def d_roi_cord_open_contours(env):
    def opened(ds):
        for c in roi(ds, "SpinalCord")[1].ContourSequence:
            c.ContourGeometricType = "OPEN_PLANAR"

    edit(env.rtstruct, opened)
    return env.expect("incomplete", ["SpinalCord"])


@case(DICOM)
def d_roi_gtv_points(env):
    def points(ds):
        for c in roi(ds, "GTV")[1].ContourSequence:
            c.ContourGeometricType = "POINT"
            c.ContourData = list(c.ContourData)[:3]
            c.NumberOfContourPoints = 1

    edit(env.rtstruct, points)
    return env.expect("incomplete", ["ROI 'GTV' (ROI number 1) has no closed planar contour"])


@case(DICOM)
def d_roi_gtv_twice(env):
    edit(env.rtstruct, lambda ds: copy_roi(ds, "GTV", "GTV"))
    return env.expect("refused", ["--role GTV=ROI:1", "--role GTV=ROI:8"])


@case(DICOM)
def d_roi_gtv_and_lowercase_gtv(env):
    edit(env.rtstruct, lambda ds: copy_roi(ds, "GTV", "gtv"))
    return env.expect("refused", ["gtv", "--role GTV=ROI:8"])


@case(DICOM)
def d_roi_cord_and_alias(env):
    edit(env.rtstruct, lambda ds: copy_roi(ds, "SpinalCord", "Spinal Cord"))
    return env.expect("refused", ["Spinal Cord", "--role SpinalCord=ROI:"])


@case(DICOM)
def d_roi_cord_alias_only(env):
    edit(env.rtstruct, lambda ds: setattr(roi(ds, "SpinalCord")[0], "ROIName", "Spinal Cord"))
    return env.expect("same")


@case(DICOM)
def d_roi_cord_bow_tie(env):
    def bow(ds):
        c = roi(ds, "SpinalCord")[1].ContourSequence[44]
        pts = np.asarray([float(v) for v in c.ContourData]).reshape(-1, 3)
        pts[[1, 4]] = pts[[4, 1]]
        c.ContourData = [float(v) for v in pts.ravel()]

    edit(env.rtstruct, bow)
    return env.expect("incomplete", ["SpinalCord"])


@case(DICOM)
def d_roi_gtv_contour_off_plane(env):
    def shift(ds):
        c = roi(ds, "GTV")[1].ContourSequence[5]
        pts = np.asarray([float(v) for v in c.ContourData]).reshape(-1, 3)
        pts[:, 2] += 0.6
        c.ContourData = [float(v) for v in pts.ravel()]

    edit(env.rtstruct, shift)
    return env.expect("warns", ["ROI 'GTV' (ROI number 1) has contours between the slices"], rc=0)


@case(DICOM)
def d_roi_gtv_contour_not_planar(env):
    def tilt(ds):
        c = roi(ds, "GTV")[1].ContourSequence[5]
        pts = np.asarray([float(v) for v in c.ContourData]).reshape(-1, 3)
        pts[:, 2] += np.linspace(0, 3.0, len(pts))
        c.ContourData = [float(v) for v in pts.ravel()]

    edit(env.rtstruct, tilt)
    return env.expect("refused", ["GTV"])


@case(DICOM)
def d_roi_contour_data_not_triplets(env):
    def odd(ds):
        c = roi(ds, "GTV")[1].ContourSequence[5]
        c.ContourData = list(c.ContourData)[:-1]

    edit(env.rtstruct, odd)
    return env.expect("refused", ["GTV"])


@case(DICOM)
def d_roi_contour_nan(env):
    def nan(ds):
        c = roi(ds, "CTV")[1].ContourSequence[5]
        data = list(c.ContourData)
        data[3] = "NaN"
        c.ContourData = data

    edit(env.rtstruct, nan)
    return env.expect("incomplete", ["ROI 'CTV' (ROI number 2) is left out", "not numbers"])


@case(DICOM)
def d_roi_two_point_contour(env):
    def two(ds):
        c = roi(ds, "GTV")[1].ContourSequence[5]
        c.ContourData = list(c.ContourData)[:6]
        c.NumberOfContourPoints = 2

    edit(env.rtstruct, two)
    return env.expect("incomplete", ["ROI 'GTV' (ROI number 1) is left out", "2 distinct points"])


@case(DICOM)
def d_roi_contour_refers_to_no_roi(env):
    edit(env.rtstruct, lambda ds: setattr(roi(ds, "Esophagus")[1], "ReferencedROINumber", 99))
    return env.expect("refused", ["99"])


@case(DICOM)
def d_rtstruct_no_rois(env):
    def none(ds):
        ds.StructureSetROISequence = []
        ds.ROIContourSequence = []
        ds.RTROIObservationsSequence = []

    edit(env.rtstruct, none)
    return env.expect("incomplete", ["No segment for CTV", "Segments found: none"])


@case(DICOM)
def d_roi_ctv_missing(env):
    edit(env.rtstruct, lambda ds: drop_roi(ds, "CTV"))
    return env.expect("incomplete", ["No segment for CTV"])


@case(DICOM)
def d_roi_gtv_missing(env):
    edit(env.rtstruct, lambda ds: drop_roi(ds, "GTV"))
    return env.expect("incomplete", ["GTV"])


@case(DICOM)
def d_roi_canal_missing(env):
    edit(env.rtstruct, lambda ds: drop_roi(ds, "SpinalCanal"))
    return env.expect("incomplete", ["No segment for SpinalCanal"])


# -- .seg.nrrd / .nrrd files -----------------------------------------------------------------------------------


def nrrd_split(path: Path):
    """(header lines, data bytes, decoded data) of a NRRD file (gzip or raw)."""
    head, data = Path(path).read_bytes().split(b"\n\n", 1)
    lines = head.decode().split("\n")
    raw = gzip.decompress(data) if "encoding: gzip" in lines else data
    return lines, data, raw


def nrrd_rewrite(src: Path, dst: Path, fields=None, keys=None, drop=(), raw=False, data=None) -> Path:
    """A copy of NRRD ``src`` with header ``fields`` ("sizes") and ``keys`` ("Segment0_Extent") replaced,
    ``drop`` removed, the data re-encoded raw (``raw``) or replaced (``data``, raw encoding)."""
    lines, encoded, decoded = nrrd_split(src)
    out = []
    for line in lines:
        name = line.split(":=", 1)[0] if ":=" in line else line.split(":", 1)[0]
        if any(line.startswith(d) for d in drop):
            continue
        if ":=" in line and keys and name in keys:
            line = f"{name}:={keys[name]}"
        elif ":=" not in line and fields and name in fields:
            line = f"{name}: {fields[name]}"
        if (raw or data is not None) and line == "encoding: gzip":
            line = "encoding: raw"
        out.append(line)
    body = data if data is not None else (decoded if raw else encoded)
    dst.write_bytes(("\n".join(out) + "\n\n").encode() + body)
    return dst


def tiny_nrrd(path: Path, array, type_name="unsigned char", directions=None, keys=None) -> Path:
    """A small hand-written NRRD (raw), e.g. 2-D."""
    array = np.asarray(array)
    dirs = directions or " ".join(["(1,0,0)", "(0,1,0)", "(0,0,1)"][: array.ndim])
    lines = [
        "NRRD0004",
        f"type: {type_name}",
        f"dimension: {array.ndim}",
        "space: left-posterior-superior",
        f"sizes: {' '.join(str(n) for n in array.shape[::-1])}",
        f"space directions: {dirs}",
        "endian: little",
        "encoding: raw",
        "space origin: (0,0,0)" if array.ndim == 3 else "space origin: (0,0)",
    ] + [f"{k}:={v}" for k, v in (keys or {}).items()]
    path.write_bytes(("\n".join(lines) + "\n\n").encode() + array.tobytes())
    return path


SEG_KEYS_2D = {"Segment0_ID": "GTV", "Segment0_Name": "GTV", "Segment0_LabelValue": "1", "Segment0_Layer": "0"}


@pytest.fixture(scope="module")
def volume_files(tmp_path_factory):
    """The thoracic phantom saved by slicer-core as a .seg.nrrd, a dose and a CT .nrrd, variants of them, and
    the plain review of the segmentation and dose."""
    from SIBSpineSBRTLib.geometry.grid import ImageGeometry
    from SIBSpineSBRTLib.geometry.masks import Mask
    from SIBSpineSBRTLib.mrml import segmentations as segs
    from SIBSpineSBRTLib.mrml import storage
    from SIBSpineSBRTLib.mrml.scene import new_scene
    from SIBSpineSBRTLib.mrml.volumes import add_volume
    from SIBSpineSBRTLib.review.demo import build_teaching_case

    root = tmp_path_factory.mktemp("volumes")
    ctx = new_scene()
    pc = build_teaching_case("thoracic", "pass")
    g, dg = pc.ct_geometry, pc.dose_geometry
    files: Dict[str, Path] = {}

    def seg(name, segments, same_name=False):
        node = segs.new_segmentation(ctx.scene, name, g)
        for n, arr in segments:
            segs.add_source_segment(node, Mask(arr, g, n), n, pc.colors.get(n, (0.5, 0.5, 0.5)), same_name)
        files[name] = Path(storage.save_segmentation(ctx.scene, node, root / f"{name}.seg.nrrd"))

    def volume(name, array, geometry, suffix=".nrrd"):
        node = add_volume(ctx.scene, np.asarray(array), geometry, name)
        files[name] = Path(storage.save_volume(ctx.scene, node, root / f"{name}{suffix}"))

    items = list(pc.segments.items())
    seg("seg", items)
    seg("seg_ctv_empty", [(n, np.zeros_like(a) if n == "CTV" else a) for n, a in items])
    seg("seg_all_empty", [(n, np.zeros_like(a)) for n, a in items])
    seg("seg_gtv_twice", items + [("GTV", pc.segments["GTV"])], same_name=True)
    seg("seg_gtv_and_gtv", items + [("gtv", pc.segments["GTV"])])
    dose = pc.dose_gy.astype(np.float32)
    volume("dose", dose, dg)
    volume("ct", pc.ct, g)
    nan = dose.copy()
    nan[5, 5, 5:9] = np.nan
    volume("dose_nan", nan, dg)
    inf = dose.copy()
    inf[5, 5, 5] = np.inf
    volume("dose_inf", inf, dg)
    neg = dose.copy()
    neg[:, :3, :3] = -2.0
    volume("dose_negative", neg, dg)
    volume("dose_zero", np.zeros_like(dose), dg)
    volume("dose_x100", dose * 100, dg)
    volume("dose_float64", dose.astype(np.float64), dg)
    m = dg.ijk_to_ras
    shifted = m.copy()
    shifted[0, 3] += 400.0
    volume("dose_shifted", dose, ImageGeometry.from_ijk_to_ras(shifted, dg.shape))
    nk = dg.shape[0]
    flip = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, -1, nk - 1], [0, 0, 0, 1]], float)
    volume("dose_flipped", dose[::-1].copy(), ImageGeometry.from_ijk_to_ras(m @ flip, dg.shape))
    swap = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    permuted = np.ascontiguousarray(dose.transpose(0, 2, 1))
    volume("dose_permuted", permuted, ImageGeometry.from_ijk_to_ras(m @ swap, permuted.shape))
    out = root / "plain"
    argv = ["review", "--segmentation", files["seg"], "--dose", files["dose"], "--dose-unit", "Gy", "--level", "T8"]
    assert main([str(a) for a in argv] + ["--no-report", "--out", str(out)]) == 0
    return {"files": files, "metrics": json.loads((out / "metrics.json").read_text())}


@dataclass
class VolumeEnv:
    tmp: Path
    files: Dict[str, Path]
    out: Path

    def file(self, name: str, dst: Optional[str] = None) -> Path:
        """A copy of a prepared file in this case's folder (so that hashing it is hashing this case's input)."""
        src = self.files[name]
        target = self.tmp / (dst or src.name)
        shutil.copy(src, target)
        return target

    def review(self, seg=None, dose=None, *extra, unit="Gy") -> List:
        seg = seg if seg is not None else self.file("seg")
        dose = dose if dose is not None else self.file("dose")
        unit_args = ["--dose-unit", unit] if unit else []
        return ["review", "--segmentation", seg, "--dose", dose, *unit_args, "--level", "T8", "--no-report"] + [
            "--out",
            self.out,
            *extra,
        ]

    def expect(self, argv, kind="refused", says=(), **kw) -> Expect:
        kw.setdefault("rc", 0 if kind in ("same", "warns", "ok") else 2)
        inputs = [a for a in argv if isinstance(a, Path) and a != self.out and a.exists()]
        return Expect(argv, inputs, self.out, kind, tuple(map(str, says)), plain="volumes", **kw)


NRRD: Dict[str, Callable[[VolumeEnv], Expect]] = {}


def slicer_seg_raw(env, dst="cut.seg.nrrd", **kw) -> Path:
    return nrrd_rewrite(env.files["seg"], env.tmp / dst, **kw)


@case(NRRD)
def n_seg_2d(env):
    bad = tiny_nrrd(
        env.tmp / "flat.seg.nrrd", np.ones((20, 30), np.uint8), directions="(1,0,0) (0,1,0)", keys=SEG_KEYS_2D
    )
    return env.expect(env.review(bad), "refused", [bad, "dimension 2"], child=True)


@case(NRRD)
def n_seg_truncated_raw(env):
    _, _, raw = nrrd_split(env.files["seg"])
    bad = slicer_seg_raw(env, data=raw[: len(raw) // 3])
    return env.expect(env.review(bad), "refused", [bad, "truncated"], child=True)


@case(NRRD)
def n_seg_huge_extent(env):
    bad = slicer_seg_raw(env, "huge.seg.nrrd", fields={"sizes": "3 4000 4000 4000"}, data=b"")
    return env.expect(env.review(bad), "refused", [bad, "memory"], child=True)


@case(NRRD)
def n_seg_truncated_gzip(env):
    _, encoded, _ = nrrd_split(env.files["seg"])
    bad = env.tmp / "cutgz.seg.nrrd"
    lines, _, _ = nrrd_split(env.files["seg"])
    bad.write_bytes(("\n".join(lines) + "\n\n").encode() + encoded[: len(encoded) // 2])
    return env.expect(env.review(bad), "refused", [bad, "truncated"])


@case(NRRD)
def n_seg_garbled_gzip(env):
    lines, encoded, _ = nrrd_split(env.files["seg"])
    bad = env.tmp / "garbled.seg.nrrd"
    bad.write_bytes(("\n".join(lines) + "\n\n").encode() + encoded[:10] + b"x" * 4000)
    return env.expect(env.review(bad), "refused", [bad, "corrupt"])


@case(NRRD)
def n_seg_segment_extent_outside(env):
    bad = slicer_seg_raw(env, "ext.seg.nrrd", keys={"Segment0_Extent": "0 3999 0 3999 0 3999"})
    return env.expect(env.review(bad), "refused", [bad, "extent"])


@case(NRRD)
def n_seg_double_type_without_endian(env):
    """A multi-byte voxel type without 'endian': Teem aborted the process."""
    _, _, raw = nrrd_split(env.files["seg"])
    data = np.frombuffer(raw, np.uint8).astype("<f8").tobytes()
    bad = slicer_seg_raw(env, "double.seg.nrrd", fields={"type": "double"}, data=data)
    return env.expect(env.review(bad), "refused", [bad, "'endian'"], child=True)


@case(NRRD)
def n_seg_double_type(env):
    """Labels stored as doubles (with their byte order): read as labels, the same numbers."""
    _, _, raw = nrrd_split(env.files["seg"])
    data = np.frombuffer(raw, np.uint8).astype("<f8").tobytes()
    bad = slicer_seg_raw(env, "double.seg.nrrd", fields={"type": "double\nendian: little"}, data=data)
    return env.expect(env.review(bad), "same")


@case(NRRD)
def n_dose_without_endian(env):
    bad = nrrd_rewrite(env.files["dose"], env.tmp / "noendian.nrrd", drop=("endian",))
    return env.expect(env.review(None, bad), "refused", [bad, "'endian'"], child=True)


@case(NRRD)
def n_dose_given_as_segmentation(env):
    dose = env.file("dose")
    return env.expect(env.review(dose, dose), "refused", [dose, "not a segmentation"])


@case(NRRD)
def n_ct_given_as_segmentation(env):
    ct = env.file("ct")
    return env.expect(env.review(ct), "refused", [ct, "not a segmentation"])


@case(NRRD)
def n_segmentation_given_as_dose(env):
    seg = env.file("seg")
    return env.expect(env.review(seg, seg), "refused", [seg, "is a segmentation"])


@case(NRRD)
def n_segmentation_given_as_ct(env):
    seg = env.file("seg")
    return env.expect(env.review(seg, None, "--ct", seg), "refused", [seg, "is a segmentation"])


@case(NRRD)
def n_seg_without_reference_geometry(env):
    seg = slicer_seg_raw(env, "noref.seg.nrrd", drop=("Segmentation_ConversionParameters",))
    return env.expect(env.review(seg), "same", [seg, "no reference geometry: the segments are read on the file's own"])


@case(NRRD)
def n_seg_without_reference_geometry_with_ct(env):
    seg = slicer_seg_raw(env, "noref.seg.nrrd", drop=("Segmentation_ConversionParameters",))
    return env.expect(env.review(seg, None, "--ct", env.file("ct")), "same")


@case(NRRD)
def n_seg_ctv_empty(env):
    return env.expect(env.review(env.file("seg_ctv_empty")), "incomplete", ["CTV"])


@case(NRRD)
def n_seg_all_empty(env):
    return env.expect(env.review(env.file("seg_all_empty")), "incomplete", ["GTV"])


@case(NRRD)
def n_seg_gtv_twice(env):
    return env.expect(env.review(env.file("seg_gtv_twice")), "refused", ["--role GTV=ID:"])


@case(NRRD)
def n_seg_gtv_and_lowercase_gtv(env):
    return env.expect(env.review(env.file("seg_gtv_and_gtv")), "refused", ["gtv", "--role GTV=ID:"])


@case(NRRD)
def n_seg_origin_nan(env):
    bad = slicer_seg_raw(env, "nan.seg.nrrd", fields={"space origin": "(nan,0,0)"})
    return env.expect(env.review(bad), "refused", [bad, "space origin"])


@case(NRRD)
def n_seg_zero_spacing(env):
    bad = slicer_seg_raw(env, "flat.seg.nrrd", fields={"space directions": "none (0,0,0) (0,0.98,0) (0,0,1.25)"})
    return env.expect(env.review(bad), "refused", [bad])


@case(NRRD)
def n_seg_not_nrrd(env):
    bad = env.tmp / "structures.seg.nrrd"
    bad.write_text("GTV,CTV\n1,2\n")
    return env.expect(env.review(bad), "refused", [bad, "not a NRRD file"])


@case(NRRD)
def n_seg_empty_file(env):
    bad = env.tmp / "empty.seg.nrrd"
    bad.write_bytes(b"")
    return env.expect(env.review(bad), "refused", [bad, "empty"])


@case(NRRD)
def n_seg_missing_file(env):
    bad = env.tmp / "nowhere.seg.nrrd"
    return env.expect(env.review(bad), "refused", [bad])


@case(NRRD)
def n_seg_is_a_folder(env):
    bad = env.tmp / "folder.seg.nrrd"
    bad.mkdir()
    return env.expect(env.review(bad), "refused", [bad])


@case(NRRD)
def n_dose_nan(env):
    dose = env.file("dose_nan")
    return env.expect(env.review(None, dose), "incomplete", [dose, "NaN"])


@case(NRRD)
def n_dose_inf(env):
    dose = env.file("dose_inf")
    return env.expect(env.review(None, dose), "incomplete", [dose, "infinite"])


@case(NRRD)
def n_dose_negative(env):
    dose = env.file("dose_negative")
    return env.expect(env.review(None, dose), "incomplete", [dose, "negative"])


@case(NRRD)
def n_dose_zero_everywhere(env):
    dose = env.file("dose_zero")
    return env.expect(env.review(None, dose), "incomplete", [dose, "zero everywhere"])


@case(NRRD)
def n_dose_cgy_read_as_gy(env):
    dose = env.file("dose_x100")
    return env.expect(env.review(None, dose), "refused", [dose, "--dose-unit Gy", "unit error"])


@case(NRRD)
def n_dose_cgy_given_as_cgy(env):
    return env.expect(env.review(None, env.file("dose_x100"), unit="cGy"), "same")


@case(NRRD)
def n_dose_float64(env):
    return env.expect(env.review(None, env.file("dose_float64")), "same")


@case(NRRD)
def n_dose_flipped_consistently(env):
    return env.expect(env.review(None, env.file("dose_flipped")), "same")


@case(NRRD)
def n_dose_axes_permuted_consistently(env):
    return env.expect(env.review(None, env.file("dose_permuted")), "same")


@case(NRRD)
def n_dose_far_from_the_target(env):
    return env.expect(env.review(None, env.file("dose_shifted")), "incomplete", ["outside the dose grid"])


@case(NRRD)
def n_dose_2d(env):
    bad = tiny_nrrd(env.tmp / "flat_dose.nrrd", np.full((20, 30), 30.0, np.float32), "float", "(1,0,0) (0,1,0)")
    return env.expect(env.review(None, bad), "refused", [bad, "3-D"])


@case(NRRD)
def n_dose_truncated(env):
    _, _, raw = nrrd_split(env.files["dose"])
    bad = nrrd_rewrite(env.files["dose"], env.tmp / "short_dose.nrrd", data=raw[: len(raw) // 2])
    return env.expect(env.review(None, bad), "refused", [bad, "truncated"])


@case(NRRD)
def n_dose_huge_extent(env):
    bad = nrrd_rewrite(env.files["dose"], env.tmp / "huge_dose.nrrd", fields={"sizes": "4000 4000 4000"}, data=b"")
    return env.expect(env.review(None, bad), "refused", [bad, "memory"])


@case(NRRD)
def n_dose_detached_data_missing(env):
    bad = nrrd_rewrite(env.files["dose"], env.tmp / "dose.nhdr", fields={"data file": "gone.raw"}, data=b"")
    bad.write_bytes(bad.read_bytes().replace(b"encoding: raw", b"encoding: raw\ndata file: gone.raw"))
    return env.expect(env.review(None, bad), "refused", [bad, "gone.raw"])


@case(NRRD)
def n_dose_nifti_truncated(env):
    import SimpleITK as sitk

    good = env.tmp / "dose.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(env.files["dose"])), str(good))
    truncate(good, 0.6)
    return env.expect(env.review(None, good), "refused", [good, "truncated"])


@case(NRRD)
def n_dose_without_unit(env):
    return env.expect(env.review(unit=None), "refused", ["--dose-unit"])


@case(NRRD)
def n_ct_truncated(env):
    _, _, raw = nrrd_split(env.files["ct"])
    bad = nrrd_rewrite(env.files["ct"], env.tmp / "short_ct.nrrd", data=raw[:1000])
    return env.expect(env.review(None, None, "--ct", bad), "refused", [bad, "truncated"])


@case(NRRD)
def n_ct_2d(env):
    bad = tiny_nrrd(env.tmp / "flat_ct.nrrd", np.zeros((20, 30), np.int16), "short", "(1,0,0) (0,1,0)")
    return env.expect(env.review(None, None, "--ct", bad), "refused", [bad, "3-D"])


@case(NRRD)
def n_mr_transform_is_a_volume(env):
    ct = env.file("ct")
    return env.expect(
        env.review(None, None, "--ct", ct, "--mr", ct, "--mr-transform", ct), "refused", [ct, "not a linear transform"]
    )


@case(NRRD)
def n_mr_transform_missing(env):
    ct = env.file("ct")
    gone = env.tmp / "mr_to_ct.h5"
    return env.expect(env.review(None, None, "--ct", ct, "--mr", ct, "--mr-transform", gone), "refused", [gone])


@case(NRRD)
def n_mr_transform_junk(env):
    ct = env.file("ct")
    junk = env.tmp / "mr_to_ct.txt"
    junk.write_text("rotate a bit to the left\n")
    return env.expect(env.review(None, None, "--ct", ct, "--mr", ct, "--mr-transform", junk), "refused", [junk])


@case(NRRD)
def n_dvh_dose_given_as_segmentation(env):
    dose = env.file("dose")
    e = env.expect(["dvh", "--dose", dose, "--dose-unit", "Gy", "--segmentation", dose], "refused", [dose])
    e.out = None
    return e


@case(NRRD)
def n_dvh_dose_nan(env):
    dose = env.file("dose_nan")
    argv = ["dvh", "--dose", dose, "--dose-unit", "Gy", "--segmentation", env.file("seg")]
    e = env.expect(argv, "refused", [dose, "NaN"])
    e.out = None
    return e


@case(NRRD)
def n_dvh_seg_truncated(env):
    lines, encoded, _ = nrrd_split(env.files["seg"])
    bad = env.tmp / "cutgz.seg.nrrd"
    bad.write_bytes(("\n".join(lines) + "\n\n").encode() + encoded[: len(encoded) // 2])
    e = env.expect(["dvh", "--dose", env.file("dose"), "--dose-unit", "Gy", "--segmentation", bad], "refused", [bad])
    e.out = None
    return e


@case(NRRD)
def n_volumes_seg_truncated(env):
    lines, encoded, _ = nrrd_split(env.files["seg"])
    bad = env.tmp / "cutgz.seg.nrrd"
    bad.write_bytes(("\n".join(lines) + "\n\n").encode() + encoded[: len(encoded) // 2])
    out = env.tmp / "planned.seg.nrrd"
    e = env.expect(["volumes", "--segmentation", bad, "--level", "T8", "--out", out], "refused", [bad, "truncated"])
    e.out = out
    return e


@case(NRRD)
def n_volumes_seg_ctv_empty(env):
    seg = env.file("seg_ctv_empty")
    out = env.tmp / "planned.seg.nrrd"
    e = env.expect(
        ["volumes", "--segmentation", seg, "--level", "T8", "--out", out], "refused", ["CTV", "nothing was written"]
    )
    e.out = out
    return e


# -- options ------------------------------------------------------------------------------------------------


@dataclass
class OptionEnv:
    tmp: Path
    case: Path  # the plain DICOM export (shared: every case hashes it before and after)
    files: Dict[str, Path]
    out: Path

    def review(self, *extra, level="T8") -> List:
        lv = ["--level", level] if level is not None else []
        return ["review", "--dicom", self.case, *lv, "--no-report", "--out", self.out, *extra]

    def file(self, name: str) -> Path:
        target = self.tmp / self.files[name].name
        if not target.exists():
            shutil.copy(self.files[name], target)
        return target

    def dvh(self, *extra) -> List:
        return ["dvh", "--dose", self.file("dose"), "--dose-unit", "Gy", "--segmentation", self.file("seg"), *extra]

    def volumes(self, *extra) -> List:
        return ["volumes", "--segmentation", self.file("seg"), "--level", "T8", "--out", self.out_seg, *extra]

    @property
    def out_seg(self) -> Path:
        return self.tmp / "planned.seg.nrrd"

    def protocol(self, edit_fn=None, text=None, name="clinic.json") -> Path:
        from SIBSpineSBRTLib.protocol.model import PROTOCOL_DIR

        path = self.tmp / name
        if text is not None:
            path.write_text(text)
            return path
        doc = json.loads((Path(PROTOCOL_DIR) / "mitsuyoshi2025.json").read_text())
        edit_fn(doc)
        path.write_text(json.dumps(doc, indent=1))
        return path

    def expect(self, argv, kind="refused", says=(), **kw) -> Expect:
        kw.setdefault("rc", 0 if kind in ("same", "warns", "ok") else 2)
        out = self.out_seg if argv and argv[0] == "volumes" else (None if argv and argv[0] == "dvh" else self.out)
        inputs = [a for a in argv if isinstance(a, Path) and a not in (self.out, self.out_seg) and a.exists()]
        return Expect(argv, inputs, out, kind, tuple(map(str, says)), **kw)


OPTIONS: Dict[str, Callable[[OptionEnv], Expect]] = {}


def option_case(name, build, kind="refused", says=(), **kw):
    """Register a case whose command line is ``build(env)``."""

    def fn(env):
        return env.expect(build(env), kind, says, **kw)

    fn.__name__ = "o_" + name
    case(OPTIONS)(fn)


for _name, _value in [
    ("inf", "inf"),
    ("nan", "nan"),
    ("negative", "-1"),
    ("huge", "51"),
    ("text", "two"),
    ("overflow", "1e999"),
    ("empty", ""),
]:
    option_case(f"prv_margin_{_name}", lambda env, v=_value: env.review("--prv-margin-mm", v), says=["--prv-margin-mm"])

for _name, _value in [
    ("two_values", "2,2"),
    ("inf", "2,2,inf"),
    ("negative", "-2,2,5"),
    ("nan", "nan,2,5"),
    ("four_values", "2,2,5,5"),
    ("semicolons", "2;2;5"),
    ("text", "a,b,c"),
    ("huge", "2,2,51"),
    ("six_one_negative", "1,1,1,1,1,-1"),
    ("empty", ""),
]:
    option_case(f"ptv_margin_{_name}", lambda env, v=_value: env.review("--ptv-margin-mm", v), says=["--ptv-margin-mm"])

option_case("volumes_prv_margin_nan", lambda env: env.volumes("--prv-margin-mm", "nan"), says=["--prv-margin-mm"])
option_case("volumes_ptv_margin_inf", lambda env: env.volumes("--ptv-margin-mm", "inf"), says=["--ptv-margin-mm"])
option_case("demo_ptv_margin_negative", lambda env: ["demo", "--ptv-margin-mm", "-3", "--out", env.out], says=["-3"])
option_case(
    "prv_margin_zero_is_a_deviation",
    lambda env: env.review("--prv-margin-mm", "0"),
    "nonprotocol",
    ["NON-PROTOCOL REVIEW", "SpinalCord_PRV02 margin 0 mm"],
)

for _name, _value in [
    ("unknown_letter", "X9"),
    ("t13", "T13"),
    ("c0", "C0"),
    ("s6", "S6"),
    ("empty", ""),
    ("list", "T8,T9"),
    ("number_only", "8"),
]:
    option_case(
        f"level_{_name}", lambda env, v=_value: env.review(level=v), says=["level"] + ([_value] if _value else [])
    )
option_case("level_lowercase", lambda env: env.review(level="t8"), "same")
option_case(
    "level_reversed_range_is_read_cranial_first",
    lambda env: env.review(level="L2-T12"),
    "warns",
    ["states level T8, but level T12-L2 was given"],
)
option_case(
    "volumes_level_bad",
    lambda env: ["volumes", "--segmentation", env.file("seg"), "--level", "Z1", "--out", env.out_seg],
    says=["Z1"],
)

option_case("role_without_equals", lambda env: env.review("--role", "SpinalCord"), says=["--role SpinalCord"])
option_case("role_without_role", lambda env: env.review("--role", "=Cord"), says=["--role =Cord"])
option_case("role_unknown", lambda env: env.review("--role", "Bogus=GTV"), says=["Bogus"])
option_case("role_derived", lambda env: env.review("--role", "PTV_Eval=GTV"), says=["--role PTV_Eval=GTV"])
option_case("role_absent_segment", lambda env: env.review("--role", "SpinalCord=NO_SUCH"), says=["NO_SUCH"])
option_case("role_roi_99", lambda env: env.review("--role", "SpinalCord=ROI:99"), says=["no ROI number 99"])
option_case("role_segment_id_in_dicom", lambda env: env.review("--role", "SpinalCord=ID:nope"), says=["ID:nope"])
option_case("role_cord_as_gtv", lambda env: env.review("--role", "GTV=SpinalCord"), "incomplete", ["outside the CTV"])
option_case("volumes_role_derived", lambda env: env.volumes("--role", "PTV=CTV"), says=["--role PTV=CTV"])

for _name, _value in [
    ("over_100_percent", "D150%"),
    ("word", "Dmaximum"),
    ("negative_dose", "V-5Gy"),
    ("no_unit", "D0.03"),
    ("nan", "DNaN%"),
    ("inf_dose", "VinfGy"),
    ("empty", ""),
]:
    option_case(f"metric_{_name}", lambda env, v=_value: env.dvh("--metric", v), says=[f"--metric {_value}"])
option_case("structure_unknown", lambda env: env.dvh("--structure", "NO_SUCH"), says=["NO_SUCH", "GTV"])
option_case(
    "dvh_dose_unit_contradicts_rtdose",
    lambda env: [
        "dvh",
        "--dose",
        env.case / "RTDOSE.dcm",
        "--dose-unit",
        "cGy",
        "--rtstruct",
        env.case / "RTSTRUCT.dcm",
    ],
    says=["--dose-unit cGy", "GY"],
)
option_case(
    "dvh_rtstruct_and_segmentation",
    lambda env: env.dvh("--rtstruct", env.case / "RTSTRUCT.dcm"),
    says=["--segmentation", "--rtstruct"],
)
option_case(
    "dvh_rtstruct_with_ct",
    lambda env: [
        "dvh",
        "--dose",
        env.case / "RTDOSE.dcm",
        "--rtstruct",
        env.case / "RTSTRUCT.dcm",
        "--ct",
        env.file("ct"),
    ],
    says=["--ct"],
)
option_case(
    "dvh_volume_dose_without_unit",
    lambda env: ["dvh", "--dose", env.file("dose"), "--segmentation", env.file("seg")],
    says=["--dose-unit"],
)


def _negative_margin(doc):
    doc["planning"]["ptv_margin_mm"]["R"] = -2


def _no_constraints(doc):
    doc["constraints"] = []


def _negative_prescription(doc):
    doc["prescription"]["dose_gy"] = -30


def _zero_fractions(doc):
    doc["fractions"] = 0


def _infinite_margin(doc):
    doc["planning"]["prv_margin_mm"] = float("inf")


def _unknown_metric(doc):
    doc["constraints"][0]["metric"] = "D150%"


def _unknown_structure(doc):
    doc["constraints"][0]["structure"] = "Liver_PRV"


def _other_prv(doc):
    doc["planning"]["prv_margin_mm"] = 1.5


option_case("protocol_unknown_id", lambda env: env.review("--protocol", "nosuch2031"), says=["nosuch2031"])
for _name, _fn in [
    ("negative_margin", _negative_margin),
    ("no_constraints", _no_constraints),
    ("negative_prescription", _negative_prescription),
    ("zero_fractions", _zero_fractions),
    ("infinite_margin", _infinite_margin),
    ("unknown_metric", _unknown_metric),
    ("unknown_structure", _unknown_structure),
]:
    option_case(
        f"protocol_{_name}",
        lambda env, f=_fn: env.review("--protocol", env.protocol(f)),
        says=["clinic.json"],
    )
for _name, _text in [("broken_json", '{"format": "sibspine-protocol/1", "id": '), ("empty_file", ""), ("array", "[]")]:
    option_case(
        f"protocol_{_name}", lambda env, t=_text: env.review("--protocol", env.protocol(text=t)), says=["clinic.json"]
    )
option_case("protocol_is_a_folder", lambda env: env.review("--protocol", env.tmp), says=[])
option_case(
    "protocol_is_a_dicom_file", lambda env: env.review("--protocol", env.case / "RTPLAN.dcm"), says=["RTPLAN.dcm"]
)
option_case(
    "protocol_edited_copy_is_a_deviation",
    lambda env: env.review("--protocol", env.protocol(_other_prv)),
    "nonprotocol",
    ["NON-PROTOCOL REVIEW"],
)
option_case(
    "volumes_protocol_broken",
    lambda env: env.volumes("--protocol", env.protocol(text="{")),
    says=["clinic.json"],
)
option_case(
    "demo_protocol_negative_margin",
    lambda env: ["demo", "--protocol", env.protocol(_negative_margin), "--out", env.out],
    says=["clinic.json"],
)

option_case("dicom_and_segmentation", lambda env: env.review("--segmentation", env.file("seg")), says=["--dicom"])
option_case("dicom_and_dose_unit", lambda env: env.review("--dose-unit", "Gy"), says=["--dose-unit"])
option_case("dicom_and_mr", lambda env: env.review("--mr", env.file("ct")), says=["--mr"])
option_case("dicom_and_register", lambda env: env.review("--register"), says=["--register"])
option_case(
    "segmentation_without_dose",
    lambda env: ["review", "--segmentation", env.file("seg"), "--level", "T8", "--out", env.out],
    says=["--dose"],
)
option_case(
    "review_without_level",
    lambda env: (
        ["review", "--segmentation", env.file("seg"), "--dose", env.file("dose"), "--dose-unit", "Gy"]
        + ["--out", env.out]
    ),
    says=["--level"],
)


def _nrrd_review(env, *extra):
    return ["review", "--segmentation", env.file("seg"), "--dose", env.file("dose"), "--dose-unit", "Gy"] + [
        "--level",
        "T8",
        "--no-report",
        "--out",
        env.out,
        *extra,
    ]


option_case("mr_without_ct", lambda env: _nrrd_review(env, "--mr", env.file("ct")), says=["--ct"])
option_case("mr_transform_without_mr", lambda env: _nrrd_review(env, "--mr-transform", env.tmp / "t.h5"), says=["--mr"])
option_case(
    "register_and_mr_transform",
    lambda env: _nrrd_review(
        env, "--ct", env.file("ct"), "--mr", env.file("ct"), "--register", "--mr-transform", env.tmp / "t.h5"
    ),
    says=["--register", "--mr-transform"],
)
option_case(
    "volumes_dicom_and_segmentation",
    lambda env: [
        "volumes",
        "--dicom",
        env.case,
        "--segmentation",
        env.file("seg"),
        "--level",
        "T8",
        "--out",
        env.out_seg,
    ],
    says=["--segmentation", "--dicom"],
)
option_case(
    "volumes_neither_input", lambda env: ["volumes", "--level", "T8", "--out", env.out_seg], says=["--segmentation"]
)
option_case(
    "volumes_dicom_with_ct",
    lambda env: ["volumes", "--dicom", env.case, "--ct", env.file("ct"), "--level", "T8", "--out", env.tmp / "v.dcm"],
    says=["--ct"],
)
option_case(
    "volumes_segmentation_to_dcm",
    lambda env: ["volumes", "--segmentation", env.file("seg"), "--level", "T8", "--out", env.tmp / "v.dcm"],
    says=["v.dcm"],
)
option_case("argparse_unknown_option", lambda env: env.review("--bogus"), says=["--bogus"])
option_case("argparse_dose_unit_choice", lambda env: _nrrd_review(env)[:6] + ["mGy"], says=["--dose-unit", "mGy"])
option_case("argparse_demo_case", lambda env: ["demo", "--case", "femur", "--out", env.out], says=["--case", "femur"])
option_case(
    "argparse_demo_variant", lambda env: ["demo", "--variant", "maybe", "--out", env.out], says=["--variant", "maybe"]
)
option_case(
    "argparse_volumes_without_out",
    lambda env: ["volumes", "--segmentation", env.file("seg"), "--level", "T8"],
    says=["--out"],
)
option_case("argparse_no_command", lambda env: [], says=["command"])
option_case("argparse_level_without_value", lambda env: env.review()[:3] + ["--level"], says=["--level"])


# -- outputs --------------------------------------------------------------------------------------------------


@dataclass
class OutputEnv:
    tmp: Path
    case: Path  # a copy of the plain DICOM export, this case's own
    files: Dict[str, Path]
    earlier_pass: Path  # an earlier review's output folder (a PASS)
    monkeypatch: pytest.MonkeyPatch

    def review(self, out, *extra, report=False) -> List:
        return ["review", "--dicom", self.case, "--level", "T8", *([] if report else ["--no-report"]), "--out", out]

    def file(self, name: str) -> Path:
        target = self.tmp / self.files[name].name
        if not target.exists():
            shutil.copy(self.files[name], target)
        return target

    def user_folder(self, name="out") -> Path:
        """An existing output folder holding a file of the user's own."""
        out = self.tmp / name
        out.mkdir()
        (out / "notes.txt").write_text("mine")
        return out

    def rerun_folder(self, with_report=False) -> Path:
        """A folder holding an earlier PASS (its metrics.json, scene and, ``with_report``, its reports)."""
        out = self.tmp / "out"
        shutil.copytree(self.earlier_pass, out)
        if with_report:
            (out / "report.html").write_text("<html>the earlier PASS</html>")
            (out / "report.pdf").write_bytes(b"%PDF-1.4 the earlier PASS")
        return out

    def full_disk(self, target: str) -> None:
        def full(*a, **k):
            raise OSError(errno.ENOSPC, "No space left on device", str(self.tmp / "disk"))

        self.monkeypatch.setattr(target, full)

    def expect(self, argv, out, kind="refused", says=(), inputs=(), **kw) -> Expect:
        kw.setdefault("rc", 0 if kind in ("same", "warns", "ok") else 2)
        given = [a for a in argv if isinstance(a, Path) and a != out and a.exists()]
        return Expect(argv, given + list(inputs), out, kind, tuple(map(str, says)), **kw)


OUTPUTS: Dict[str, Callable[[OutputEnv], Expect]] = {}


@case(OUTPUTS)
def u_out_under_a_file(env):
    f = env.tmp / "notes.txt"
    f.write_text("x")
    out = f / "review"
    return env.expect(env.review(out), out, says=[out], inputs=[f])


@case(OUTPUTS)
def u_out_in_proc(env):
    out = Path("/proc/sibspine-review")
    return env.expect(env.review(out), out, says=[out])


@case(OUTPUTS)
def u_out_is_an_existing_file(env):
    out = env.tmp / "taken"
    out.write_text("x")
    return env.expect(env.review(out), out, says=[out, "is an existing file"])


@case(OUTPUTS)
def u_demo_out_is_an_existing_file(env):
    out = env.tmp / "taken"
    out.write_text("x")
    return env.expect(["demo", "--out", out, "--no-report"], out, says=[out, "is an existing file"])


@case(OUTPUTS)
def u_out_is_the_case_folder(env):
    return env.expect(env.review(env.case), None, says=["inputs are never written"], inputs=[env.case])


@case(OUTPUTS)
def u_out_inside_the_case_folder(env):
    return env.expect(env.review(env.case / "review"), None, says=["inputs are never written"], inputs=[env.case])


@case(OUTPUTS)
def u_out_is_the_rtdose(env):
    return env.expect(env.review(env.case / "RTDOSE.dcm"), None, says=["inputs are never written"], inputs=[env.case])


@case(OUTPUTS)
def u_volumes_out_over_the_rtstruct(env):
    argv = ["volumes", "--dicom", env.case, "--level", "T8", "--out", env.case / "RTSTRUCT.dcm"]
    return env.expect(argv, None, says=["inputs are never written"], inputs=[env.case])


@case(OUTPUTS)
def u_volumes_out_inside_the_case_folder(env):
    argv = ["volumes", "--dicom", env.case, "--level", "T8", "--out", env.case / "planned.dcm"]
    return env.expect(argv, None, says=["inputs are never written"], inputs=[env.case])


@case(OUTPUTS)
def u_volumes_out_is_its_input(env):
    seg = env.file("seg")
    argv = ["volumes", "--segmentation", seg, "--level", "T8", "--out", seg]
    return env.expect(argv, None, says=[seg, "is one of the inputs"], inputs=[seg])


@case(OUTPUTS)
def u_review_out_is_the_segmentation(env):
    seg, dose = env.file("seg"), env.file("dose")
    argv = ["review", "--segmentation", seg, "--dose", dose, "--dose-unit", "Gy", "--level", "T8", "--out", seg]
    return env.expect(argv, None, says=[seg, "is one of the inputs"], inputs=[seg])


@case(OUTPUTS)
def u_review_out_is_the_dose(env):
    seg, dose = env.file("seg"), env.file("dose")
    argv = ["review", "--segmentation", seg, "--dose", dose, "--dose-unit", "Gy", "--level", "T8", "--out", dose]
    return env.expect(argv, None, says=[dose, "is one of the inputs"], inputs=[dose])


@case(OUTPUTS)
def u_full_disk_writing_the_pdf(env):
    env.full_disk("SIBSpineSBRTLib.report.pdf_report.write_pdf")
    out = env.user_folder()
    return env.expect(env.review(out, report=True), out, says=["No space left on device"])


@case(OUTPUTS)
def u_full_disk_writing_metrics(env):
    env.full_disk("SIBSpineSBRTLib.report.metrics_json.write_metrics_json")
    out = env.user_folder()
    return env.expect(env.review(out), out, says=["No space left on device"])


@case(OUTPUTS)
def u_full_disk_writing_the_scene(env):
    env.full_disk("SIBSpineSBRTLib.mrml.storage.save_scene_mrb")
    out = env.user_folder()
    return env.expect(env.review(out), out, says=["No space left on device"])


@case(OUTPUTS)
def u_full_disk_writing_volumes(env):
    env.full_disk("SIBSpineSBRTLib.mrml.storage.save_segmentation")
    out = env.tmp / "planned.seg.nrrd"
    argv = ["volumes", "--segmentation", env.file("seg"), "--level", "T8", "--out", out]
    return env.expect(argv, out, says=["No space left on device"])


@case(OUTPUTS)
def u_full_disk_writing_an_rtstruct(env):
    env.full_disk("SIBSpineSBRTLib.caseio.export.write_planning_volumes")
    out = env.tmp / "planned.dcm"
    return env.expect(["volumes", "--dicom", env.case, "--level", "T8", "--out", out], out, says=["No space left"])


@case(OUTPUTS)
def u_rerun_pass_then_bad_input(env):
    out = env.rerun_folder()
    env.cts = sorted((env.case / "CT").glob("*.dcm"))
    env.cts[44].unlink()  # a gap in the CT
    return env.expect(env.review(out), out, says=["missing"])


@case(OUTPUTS)
def u_rerun_pass_then_crash(env):
    def broken(*a, **k):
        raise RuntimeError("the PDF writer died")

    env.monkeypatch.setattr("SIBSpineSBRTLib.report.pdf_report.write_pdf", broken)
    env.monkeypatch.setenv("XDG_CACHE_HOME", str(env.tmp / "cache"))
    out = env.rerun_folder()

    def logged(r):
        logs = list((env.tmp / "cache" / "sibspine-sbrt" / "logs").glob("*.log"))
        assert logs and "the PDF writer died" in logs[0].read_text()

    return env.expect(
        env.review(out, report=True),
        out,
        says=["internal error: RuntimeError: the PDF writer died", "please report"],
        internal=True,
        after=logged,
    )


@case(OUTPUTS)
def u_rerun_pass_then_full_disk(env):
    env.full_disk("SIBSpineSBRTLib.report.pdf_report.write_pdf")
    out = env.rerun_folder(with_report=True)
    return env.expect(env.review(out, report=True), out, says=["No space left on device"])


@case(OUTPUTS)
def u_rerun_pass_with_report_then_incomplete(env):
    """An earlier PASS with its report, then an incomplete review without one: the old report must not stay
    beside the new metrics.json as if it were this run's."""
    out = env.rerun_folder(with_report=True)
    edit(env.case / "RTSTRUCT.dcm", lambda ds: drop_roi(ds, "CTV"))

    def no_stale(r):
        names = sorted(p.name for p in out.iterdir())
        assert names == ["metrics.csv", "metrics.json", "review.mrb"], names

    return env.expect(env.review(out), out, "incomplete", ["No segment for CTV"], after=no_stale)


@case(OUTPUTS)
def u_a_folder_where_metrics_json_goes(env):
    out = env.user_folder()
    (out / "metrics.json").mkdir()
    return env.expect(env.review(out), out, says=["metrics.json is a folder"])


@case(OUTPUTS)
def u_volumes_out_folder_missing(env):
    out = env.tmp / "nowhere" / "planned.seg.nrrd"
    argv = ["volumes", "--segmentation", env.file("seg"), "--level", "T8", "--out", out]
    return env.expect(argv, out, says=["does not exist"])


@case(OUTPUTS)
def u_volumes_out_is_a_folder(env):
    out = env.tmp / "planned.seg.nrrd"
    out.mkdir()
    argv = ["volumes", "--segmentation", env.file("seg"), "--level", "T8", "--out", out]
    return env.expect(argv, out, says=[out, "is a folder"])


@case(OUTPUTS)
def u_volumes_out_under_a_file(env):
    f = env.tmp / "notes.txt"
    f.write_text("x")
    out = f / "planned.seg.nrrd"
    argv = ["volumes", "--segmentation", env.file("seg"), "--level", "T8", "--out", out]
    return env.expect(argv, out, says=[out], inputs=[f])


# -- serve ----------------------------------------------------------------------------------------------------


class PastTheChecks(Exception):
    """Raised where the server would start: a case reaching it was not refused."""


@dataclass
class ServeEnv:
    tmp: Path
    case: Path
    monkeypatch: pytest.MonkeyPatch
    busy: Optional[socket.socket] = None

    def expect(self, argv, says=(), inputs=()) -> Expect:
        return Expect(["serve", *argv], list(inputs), None, "refused", tuple(map(str, says)))


SERVE: Dict[str, Callable[[ServeEnv], Expect]] = {}


@case(SERVE)
def s_busy_port(env):
    env.busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    env.busy.bind(("127.0.0.1", 0))
    env.busy.listen(1)
    port = env.busy.getsockname()[1]
    return env.expect(["--port", port], [f"Port {port}", "already in use"])


@case(SERVE)
def s_port_70000(env):
    return env.expect(["--port", "70000"], ["--port", "70000"])


@case(SERVE)
def s_port_negative(env):
    return env.expect(["--port", "-1"], ["--port"])


@case(SERVE)
def s_port_text(env):
    return env.expect(["--port", "http"], ["--port", "'http'"])


@case(SERVE)
def s_unknown_case(env):
    return env.expect(["--case", env.tmp / "no_such_case"], ["--case", "no_such_case"])


@case(SERVE)
def s_unknown_variant(env):
    return env.expect(["--variant", "maybe"], ["--variant maybe"])


@case(SERVE)
def s_remote_host_without_allow_remote(env):
    return env.expect(["--host", "0.0.0.0"], ["--host 0.0.0.0", "--allow-remote"])


@case(SERVE)
def s_broken_protocol_file(env):
    bad = env.tmp / "clinic.json"
    bad.write_text('{"format": ')
    return env.expect(["--protocol", bad], [bad], inputs=[bad])


@case(SERVE)
def s_dicom_case_with_a_bad_level(env):
    return env.expect(["--case", env.case, "--level", "T13"], ["T13"], inputs=[env.case])


# -- the test: one parametrised case per entry ---------------------------------------------------------------


def params(registry):
    return [
        pytest.param(k, id=k, marks=[pytest.mark.xfail(strict=True, reason=XFAIL[k])] if k in XFAIL else [])
        for k in registry
    ]


@pytest.mark.parametrize("name", params(DICOM))
def test_dicom_case_folder(name, exported, tmp_path, capsys):
    env = DicomEnv(tmp_path, tmp_path / "case", tmp_path / "out")
    shutil.copytree(exported["case"], env.case, symlinks=True)
    e = DICOM[name](env)
    if not env.case.exists():
        e.inputs = []
    check(e, capsys, {"dicom": exported["metrics"]})


@pytest.mark.parametrize("name", params(NRRD))
def test_volume_files(name, volume_files, tmp_path, capsys):
    env = VolumeEnv(tmp_path, volume_files["files"], tmp_path / "out")
    check(NRRD[name](env), capsys, {"volumes": volume_files["metrics"]})


@pytest.mark.parametrize("name", params(OPTIONS))
def test_options(name, exported, volume_files, tmp_path, capsys):
    env = OptionEnv(tmp_path, exported["case"], volume_files["files"], tmp_path / "out")
    check(OPTIONS[name](env), capsys, {"dicom": exported["metrics"], "volumes": volume_files["metrics"]})


@pytest.mark.parametrize("name", params(OUTPUTS))
def test_outputs(name, exported, volume_files, tmp_path, capsys, monkeypatch):
    shutil.copytree(exported["case"], tmp_path / "case")
    env = OutputEnv(tmp_path, tmp_path / "case", volume_files["files"], exported["run"], monkeypatch)
    check(OUTPUTS[name](env), capsys)


@pytest.mark.parametrize("name", params(SERVE))
def test_serve(name, exported, tmp_path, capsys, monkeypatch):
    from SIBSpineSBRTLib.frontends.web import app

    monkeypatch.setattr(sys, "argv", list(sys.argv))  # serve() trims sys.argv for trame
    monkeypatch.setenv("DISPLAY", "unused:0")  # so that serve() leaves the VTK window setting alone

    def past(*_):
        raise PastTheChecks("serve went on past its checks")

    monkeypatch.setattr(app, "seconds_since_process_start", past)  # the first step after the checks
    env = ServeEnv(tmp_path, exported["case"], monkeypatch)
    e = SERVE[name](env)
    try:
        check(e, capsys)
    finally:
        if env.busy is not None:
            env.busy.close()


FAMILIES = {"dicom": DICOM, "nrrd": NRRD, "options": OPTIONS, "outputs": OUTPUTS, "serve": SERVE}


def test_the_table_counts_every_case():
    """The module docstring's table says how many cases each family has; the suite has at least 150."""
    table = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+) +(\d+)  ", __doc__, re.MULTILINE)}
    assert table == {name: len(cases) for name, cases in FAMILIES.items()}
    total = sum(table.values())
    assert total >= 150
    print(f"\nbad-input suite: {total} cases ({', '.join(f'{k} {v}' for k, v in table.items())})")
