"""The false-PASS paths through the command line, on the DICOM export of the thoracic phantom
(``sibspine demo --export-dicom``), edited with pydicom as a planning system's export could be."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from conftest import REPO

pytestmark = pytest.mark.mrml


def run(*args):
    exe = Path(sys.executable).with_name("sibspine")
    return subprocess.run([str(exe), *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("fp")
    proc = run("demo", "--export-dicom", root / "case", "--out", root / "demo", "--no-report")
    assert proc.returncode == 0, proc.stderr
    return root / "case"


def copy_case(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def review(case: Path, out: Path, *extra):
    proc = run("review", "--dicom", case, "--out", out, "--no-report", *extra)
    doc = json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").exists() else None
    return proc, doc


def rows(doc):
    return {(r["structure"], r["metric"]): r for r in doc["rows"]}


def test_passing_plan_reads_met_for_mandatory_only_limits(exported, tmp_path):
    proc, doc = review(exported, tmp_path / "out", "--level", "T8")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert doc["format"] == "sibspine-metrics/2" and doc["verdict"] == "pass" and doc["deviations"] == []
    r = rows(doc)
    assert r[("SpinalCord_PRV02", "D0.03cc")]["status"] == "met"
    assert r[("ThecalSac", "D0.03cc")]["status"] == "met"
    assert r[("Esophagus", "D0.03cc")]["confirmed"] is False and r[("GTV", "D50%")]["confirmed"] is True
    assert "MET" in proc.stdout and "Local defaults to confirm" in proc.stdout


def test_dose_grid_cut_to_its_upper_half(exported, tmp_path):
    case = copy_case(exported, tmp_path / "case")
    ds = pydicom.dcmread(case / "RTDOSE.dcm")
    offsets = np.asarray(ds.GridFrameOffsetVector, float)
    z = float(ds.ImagePositionPatient[2]) + offsets
    keep = z > np.median(z)  # the superior half (DICOM z grows towards the head)
    frames = ds.pixel_array[keep]
    ds.ImagePositionPatient[2] = float(z[keep][0])
    ds.GridFrameOffsetVector = [float(v) for v in offsets[keep] - offsets[keep][0]]
    ds.NumberOfFrames = int(keep.sum())
    ds.PixelData = np.ascontiguousarray(frames).tobytes()
    ds.save_as(case / "RTDOSE.dcm")
    proc, doc = review(case, tmp_path / "out", "--level", "T8")
    assert doc["verdict"] != "pass" and proc.returncode != 0
    gtv = [r for r in doc["rows"] if r["structure"] == "GTV"]
    assert gtv and all(r["status"] == "not_evaluable" and "outside the dose grid" in r["message"] for r in gtv)


def drop_roi(path: Path, name: str) -> None:
    ds = pydicom.dcmread(path)
    number = next(r.ROINumber for r in ds.StructureSetROISequence if r.ROIName == name)
    ds.StructureSetROISequence = [r for r in ds.StructureSetROISequence if r.ROINumber != number]
    ds.ROIContourSequence = [r for r in ds.ROIContourSequence if r.ReferencedROINumber != number]
    ds.RTROIObservationsSequence = [r for r in ds.RTROIObservationsSequence if r.ReferencedROINumber != number]
    ds.save_as(path)


def test_missing_cord_at_l2_is_not_a_pass_but_at_l3_it_is(exported, tmp_path):
    case = copy_case(exported, tmp_path / "case")
    drop_roi(case / "RTSTRUCT.dcm", "SpinalCord")
    proc, doc = review(case, tmp_path / "l2", "--level", "L2")
    assert doc["verdict"] == "incomplete" and proc.returncode == 2
    assert rows(doc)[("SpinalCord_PRV02", "D0.03cc")]["status"] == "not_evaluable"
    proc, doc = review(case, tmp_path / "l3", "--level", "L3")
    assert doc["verdict"] == "pass" and proc.returncode == 0, proc.stdout
    assert rows(doc)[("SpinalCord_PRV02", "D0.03cc")]["status"] == "not_applicable"


def test_non_protocol_margin_is_a_deviation(exported, tmp_path):
    proc, doc = review(exported, tmp_path / "out", "--level", "T8", "--prv-margin-mm", "0")
    assert doc["deviations"] and "SpinalCord_PRV02 margin 0 mm" in doc["deviations"][0]
    assert proc.returncode == 2 and "NON-PROTOCOL REVIEW" in proc.stdout + proc.stderr


def test_role_for_a_derived_structure_exits_2(exported, tmp_path):
    proc, _ = review(exported, tmp_path / "out", "--level", "T8", "--role", "PTV_Eval=NO_SUCH")
    assert proc.returncode == 2 and "PTV_Eval" in proc.stderr and "Traceback" not in proc.stderr


def test_three_fraction_plan_is_not_a_pass(exported, tmp_path):
    case = copy_case(exported, tmp_path / "case")
    ds = pydicom.dcmread(case / "RTPLAN.dcm")
    ds.FractionGroupSequence[0].NumberOfFractionsPlanned = 3
    ds.save_as(case / "RTPLAN.dcm")
    proc, doc = review(case, tmp_path / "out", "--level", "T8")
    assert doc["verdict"] == "incomplete" and proc.returncode == 2
    assert any("3 fractions" in p for p in doc["problems"])


def test_dose_in_cgy_read_as_gy_is_refused(exported, tmp_path):
    case = copy_case(exported, tmp_path / "case")
    ds = pydicom.dcmread(case / "RTDOSE.dcm")
    ds.DoseGridScaling = float(ds.DoseGridScaling) * 100  # values now 100x too high
    ds.save_as(case / "RTDOSE.dcm")
    proc, doc = review(case, tmp_path / "out", "--level", "T8")
    assert proc.returncode == 2 and "unit error" in proc.stderr and doc is None


def test_ct_ending_halfway_through_the_target(exported, tmp_path):
    """A CT series cut mid-target: the structure set references the missing slices, so the review is refused
    naming how many, and ``volumes`` writes nothing. (A CT and segmentation that end mid-target without such
    references are tested in test_false_pass.py: the target rows are not evaluable.)"""
    case = copy_case(exported, tmp_path / "case")
    rs = pydicom.dcmread(case / "RTSTRUCT.dcm")
    gtv = next(r.ROINumber for r in rs.StructureSetROISequence if r.ROIName == "GTV")
    contours = next(c for c in rs.ROIContourSequence if c.ReferencedROINumber == gtv).ContourSequence
    z_mid = float(np.median([float(c.ContourData[2]) for c in contours]))
    removed = 0
    for f in sorted((case / "CT").iterdir()):
        if float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) > z_mid:
            f.unlink()
            removed += 1
    assert removed > 5
    proc, doc = review(case, tmp_path / "out", "--level", "T8")
    # the structure set references CT images that are not there: refused before anything is judged
    assert proc.returncode == 2 and doc is None and "Traceback" not in proc.stderr
    assert f"{removed} of the" in proc.stderr and "missing from the case folder" in proc.stderr
    out = tmp_path / "volumes.dcm"
    proc = run("volumes", "--dicom", case, "--level", "T8", "--out", out)
    assert proc.returncode == 2 and "missing from the case folder" in proc.stderr and not out.exists()


@pytest.mark.parametrize(
    "extra",
    [("--mr", "x.nrrd"), ("--register",), ("--ct", "ct.nrrd"), ("--dose-unit", "Gy")],
)
def test_options_without_effect_are_refused(exported, tmp_path, extra):
    """Every option the CLI accepts takes effect or is refused: these have no effect with --dicom."""
    proc, doc = review(exported, tmp_path / "out", "--level", "T8", *extra)
    assert proc.returncode == 2 and doc is None and "leave" in proc.stderr and "Traceback" not in proc.stderr
