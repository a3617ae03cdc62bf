"""The command line on a DICOM case folder: ``review --dicom``, ``volumes --dicom``, ``dvh --rtstruct``."""

import json
import subprocess
import sys
from pathlib import Path

import dicom_fixtures as fx
import numpy as np
import pytest

from conftest import REPO

pytestmark = pytest.mark.mrml


def run(*args):
    exe = Path(sys.executable).with_name("sibspine")
    return subprocess.run([str(exe), *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return fx.make_case(tmp_path_factory.mktemp("dicomcase") / "case")


def test_dvh_of_rtstruct_contours_in_rtdose_matches_the_analytic_dose(case):
    # GTV: a 72-gon of radius 5.03 mm at (3.07, -5.41) LPS on the CT slices with z in [6, 14], slabs with
    # half-slice caps; the dose is linear (fx.dose_function), so Dmean = D50% = the dose at the centroid.
    proc = run(
        "dvh",
        "--dose",
        case.dose_path,
        "--rtstruct",
        case.rtstruct_path,
        "--structure",
        "GTV",
        "--metric",
        "D50%",
        "--metric",
        "Dmean",
        "--metric",
        "D0.03cc",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    gtv = json.loads(proc.stdout)["structures"]["GTV"]
    zs = np.array([z for z in (fx.CT_GRID.ipp(k)[2] for k in range(fx.CT_GRID.slices)) if 6.0 <= z <= 14.0])
    centroid = np.array([3.07, -5.41, zs.mean()])
    assert gtv["Dmean"] == pytest.approx(float(fx.dose_function(centroid)), abs=0.01)
    assert gtv["D50%"] == pytest.approx(gtv["Dmean"], abs=0.01)
    area = 72 / 2 * 5.03**2 * np.sin(2 * np.pi / 72)
    volume = area * len(zs) * fx.CT_GRID.slice_step / 1000
    assert gtv["volume_cc"] == pytest.approx(volume, abs=1e-4)  # metrics.json keeps 4 decimals


def test_review_of_a_dicom_case(case, tmp_path):
    out = tmp_path / "review"
    proc = run("review", "--dicom", case.folder, "--level", "T8", "--out", out)
    doc = json.loads((out / "metrics.json").read_text())
    # no thecal sac in this case: never a pass (fail if another row fails, else incomplete)
    assert {1: "fail", 2: "incomplete"}[proc.returncode] == doc["verdict"]
    assert len([r for r in doc["rows"] if r["structure"] != "Esophagus"]) == 9
    sac = [r for r in doc["rows"] if r["structure"] == "ThecalSac"][0]
    assert sac["status"] == "not_evaluable" and "Segments found: CTV, GTV, SpinalCanal, Cord, Ring" in sac["message"]
    from pypdf import PdfReader

    pdf_text = "".join(page.extract_text() for page in PdfReader(out / "report.pdf").pages)
    assert "Verdict:" in pdf_text
    assert fx.PATIENT_NAME.split("^")[0] not in proc.stdout + proc.stderr + (out / "report.html").read_text() + pdf_text
    proc = run("review", "--dicom", case.folder, "--level", "T8", "--out", out, "--role", "ThecalSac=SpinalCanal")
    doc = json.loads((out / "metrics.json").read_text())
    assert proc.returncode in (0, 1) and doc["verdict"] in ("pass", "fail")
    assert all(r["value"] is not None for r in doc["rows"])


def test_volumes_from_a_dicom_case(case, tmp_path):
    import pydicom

    out = tmp_path / "planning.dcm"
    proc = run("volumes", "--dicom", case.folder, "--level", "T8", "--out", out)
    assert proc.returncode == 0, proc.stderr
    names = [r.ROIName for r in pydicom.dcmread(out).StructureSetROISequence]
    assert names[-3:] == ["PTV", "PTV_Eval", "SpinalCord_PRV02"] and "CTV" in names
    bad = tmp_path / "sacral.dcm"
    proc = run("volumes", "--dicom", case.folder, "--level", "S1", "--out", bad)
    assert proc.returncode == 2 and "SacralCanal" in proc.stderr and not bad.exists()
    proc = run("volumes", "--dicom", case.folder, "--segmentation", "x.seg.nrrd", "--level", "T8", "--out", bad)
    assert proc.returncode == 2 and "either --segmentation" in proc.stderr


def test_headless_regression_script_matches_the_cli(case, tmp_path):
    """Testing/regression_review.py (the script Slicer runs with --python-script) outside Slicer gives the
    same metrics.json as ``sibspine review --dicom``; metrics.csv and the reports come with it."""
    args = ["--case", case.folder, "--level", "T8", "--role", "ThecalSac=SpinalCanal"]
    script = REPO / "Testing" / "regression_review.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--", *map(str, args), "--out", str(tmp_path / "script")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    cli = run(
        "review",
        "--dicom",
        case.folder,
        "--level",
        "T8",
        "--role",
        "ThecalSac=SpinalCanal",
        "--out",
        tmp_path / "cli",
        "--no-report",
    )
    assert proc.returncode == cli.returncode and proc.returncode in (0, 1), proc.stderr
    a = json.loads((tmp_path / "script" / "metrics.json").read_text())
    b = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert a["rows"] == b["rows"] and a["verdict"] == b["verdict"]
    assert (tmp_path / "script" / "metrics.csv").stat().st_size > 0
    assert "Verdict:" in (tmp_path / "script" / "report.html").read_text(encoding="utf-8")
    assert (tmp_path / "script" / "report.pdf").read_bytes().startswith(b"%PDF-")
    quiet = subprocess.run(
        [sys.executable, str(script), *map(str, args), "--out", str(tmp_path / "quiet"), "--no-report"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert quiet.returncode == proc.returncode
    assert sorted(p.name for p in (tmp_path / "quiet").iterdir()) == ["metrics.csv", "metrics.json"]
    bad = subprocess.run(
        [sys.executable, str(script), "--case", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "Error:" in bad.stderr
