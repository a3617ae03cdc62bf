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

==========  =====  =====================================================================================
Family      Cases  What each checks
==========  =====  =====================================================================================
dicom         FAM_DICOM  DICOM case folders: missing, empty, not a folder; missing CT/RTSTRUCT/RTDOSE/RTPLAN;
                   corrupt, truncated, zero-byte and garbled files (CT slices, RTSTRUCT, RTDOSE, RTPLAN);
                   junk files, renamed/mislabelled files, subfolders, files without preamble, a symlink
                   loop (same numbers); CT gaps, duplicates, uneven spacing, tilt, a slice of another size,
                   spacing or frame, a header-only flipped orientation; a consistently reversed stack;
                   wrong modality; frame-of-reference mismatch (RTSTRUCT, RTDOSE); two RTSTRUCTs, two
                   plan doses, two CT series; DoseUnits, DoseGridScaling (0, <0, NaN, inf, x100, x1000,
                   missing, cGy x100 = same), GridFrameOffsetVector (length, order, missing, absolute and
                   descending = same); all-zero, negative, beam, fraction doses; dose pixels short; a
                   dose grid away from the target; RTPLAN fractions, prescription, level label, two plans;
                   RTSTRUCT empty ROIs, open and point contours, duplicate names (GTV+GTV, GTV+gtv),
                   bow-ties, off-plane contours, odd/NaN coordinates, missing ROIs, an alias (same).
nrrd          FAM_NRRD  .seg.nrrd/.nrrd/.nhdr/.nii files: 2-D, truncated (raw, gzip), huge extent (child
                   process), garbled gzip, segment extent outside, wrong type, dose given as segmentation
                   and the reverse, no reference geometry, empty segments, duplicate names, NaN/inf
                   origin, zero spacing, not NRRD, empty, missing, a folder; dose NaN, inf, negative, zero,
                   x100 in Gy, in cGy (same), flipped/permuted/float64 (same), shifted away, detached
                   data missing; CT truncated or 2-D; a .nrrd as --mr-transform, a missing or junk
                   transform; the same files through ``dvh`` and ``volumes``.
options       FAM_OPTIONS  absurd margins (inf, nan, negative, huge, text, wrong count); bad levels; bad roles
                   (syntax, unknown, derived, absent, ROI:99); bad metrics and structures; protocol ids
                   and files (missing, negative margin, no constraints, broken JSON, empty, a folder, an
                   array, a DICOM file); mutually exclusive or ineffective options; argparse errors.
outputs       FAM_OUTPUTS  --out under a file, in /proc, an existing file, equal to an input, inside the DICOM
                   folder; volumes over its input; a full disk (ENOSPC from the PDF, metrics, scene and
                   segmentation writers); a rerun into a folder with an earlier PASS that then fails
                   (bad input, a crash, a full disk); a folder where an output file goes.
serve         FAM_SERVE  a busy port, --port 70000 / -1 / text, an unknown case or variant, a remote host
                   without --allow-remote, a broken protocol file: exit 2 before the server starts.
==========  =====  =====================================================================================

The total is printed at the end of the run (``conftest.pytest_terminal_summary``).
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
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
    return r


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
    return {"case": plain, "full": full, "metrics": json.loads((root / "rv" / "metrics.json").read_text())}


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
        kw.setdefault("rc", 0 if kind in ("same", "warns") else 2)
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
    truncate(env.rtplan, 0.5)  # reviewed as without an RTPLAN, the file named (see the reply: left as is)
    return env.expect("same", [env.rtplan, "truncated", "No RTPLAN was read"])


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
    return env.expect("same")


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
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], ds.ImagePositionPatient[2] + 0.6]

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
    edit_all(env.cts, lambda ds: setattr(ds, "ImageOrientationPatient", [-float(v) for v in ds.ImageOrientationPatient]))
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
    edit_all(env.cts, lambda ds: setattr(ds, "Modality", "MR"))
    return env.expect("refused", ["CT"])


@case(DICOM)
def d_rtdose_labelled_ct(env):
    edit(env.rtdose, lambda ds: setattr(ds, "Modality", "CT"))
    return env.expect("incomplete", ["RTDOSE.dcm"])


@case(DICOM)
def d_rtstruct_labelled_rtplan(env):
    edit(env.rtstruct, lambda ds: setattr(ds, "Modality", "RTPLAN"))
    return env.expect("refused", ["RTSTRUCT.dcm"])


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
    return env.expect("same", [env.rtplan, "Number of Fractions Planned is 0"])  # see the reply: left as is


@case(DICOM)
def d_plan_no_fraction_group(env):
    edit(env.rtplan, lambda ds: delattr(ds, "FractionGroupSequence"))
    return env.expect("same", [env.rtplan, "number of fractions is unknown"])  # see the reply: left as is


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


# -- the test: one parametrised case per entry ---------------------------------------------------------------


def params(registry):
    return [
        pytest.param(k, id=k, marks=[pytest.mark.xfail(strict=True, reason=XFAIL[k])] if k in XFAIL else [])
        for k in registry
    ]


@pytest.fixture
def plains(request):
    out = {}
    if "exported" in request.fixturenames:
        out["dicom"] = request.getfixturevalue("exported")["metrics"]
    return out


@pytest.mark.parametrize("name", params(DICOM))
def test_dicom_case_folder(name, exported, tmp_path, capsys):
    env = DicomEnv(tmp_path, tmp_path / "case", tmp_path / "out")
    shutil.copytree(exported["case"], env.case, symlinks=True)
    e = DICOM[name](env)
    if not env.case.exists():
        e.inputs = []
    check(e, capsys, {"dicom": exported["metrics"]})
