"""A plan exported as one RTDOSE per beam (Dose Summation Type BEAM): summed when the files are exactly the beams
of the RTPLAN they reference, on one grid, with the plan dose's numbers; a subset of the beams, or another grid,
is refused, naming the missing beams."""

import json
import shutil
from pathlib import Path

import dicom_fixtures as fx
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from SIBSpineSBRTLib.frontends.cli import main

pytestmark = pytest.mark.mrml

BEAMS = {1: 0.5, 2: 0.3, 3: 0.2}  # beam number -> share of the plan dose


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """The thoracic phantom's DICOM export (no MR) reviewed with its plan dose, and a copy whose plan has three
    beams and whose dose is three BEAM RTDOSE files (one in cGy) in place of the plan dose."""
    root = tmp_path_factory.mktemp("beam_doses")
    full = root / "export"
    assert main(["demo", "--export-dicom", str(full), "--out", str(root / "demo"), "--no-report"]) == 0
    plain = root / "plain"
    shutil.copytree(full, plain, ignore=shutil.ignore_patterns("MR*"))
    beams = root / "beams"
    shutil.copytree(plain, beams)

    plan = pydicom.dcmread(beams / "RTPLAN.dcm")
    items = []
    for n in BEAMS:
        b = Dataset()
        b.BeamNumber, b.BeamName, b.BeamType, b.RadiationType = n, f"Arc{n}", "DYNAMIC", "PHOTON"
        b.TreatmentDeliveryType = "TREATMENT"
        items.append(b)
    plan.BeamSequence = Sequence(items)
    refs = []
    for n in BEAMS:
        r = Dataset()
        r.ReferencedBeamNumber = n
        refs.append(r)
    plan.FractionGroupSequence[0].NumberOfBeams = len(BEAMS)
    plan.FractionGroupSequence[0].ReferencedBeamSequence = Sequence(refs)
    fx.save(plan, beams / "RTPLAN.dcm")

    for n, share in BEAMS.items():
        ds = pydicom.dcmread(beams / "RTDOSE.dcm")
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = fx.uid()
        ds.DoseSummationType = "BEAM"
        scaling = float(ds.DoseGridScaling) * share
        if n == 2:  # one beam in cGy: summed in Gy
            ds.DoseUnits, scaling = "CGY", scaling * 100
        ds.DoseGridScaling = f"{scaling:.12g}"
        group = Dataset()
        group.ReferencedFractionGroupNumber = 1
        beam = Dataset()
        beam.ReferencedBeamNumber = n
        group.ReferencedBeamSequence = Sequence([beam])
        ds.ReferencedRTPlanSequence[0].ReferencedFractionGroupSequence = Sequence([group])
        fx.save(ds, beams / f"RTDOSE_beam{n}.dcm")
    (beams / "RTDOSE.dcm").unlink()
    return {"plain": plain, "beams": beams, "root": root}


def _review(case: Path, out: Path, capsys):
    capsys.readouterr()
    rc = main(["review", "--dicom", str(case), "--level", "T8", "--no-report", "--out", str(out)])
    cap = capsys.readouterr()
    doc = json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").exists() else None
    return rc, cap.out + cap.err, doc


def test_all_beams_summed_give_the_plan_dose_numbers(cases, tmp_path, capsys):
    rc0, _, plain = _review(cases["plain"], tmp_path / "plain", capsys)
    rc, text, summed = _review(cases["beams"], tmp_path / "beams", capsys)
    assert rc == rc0, text
    assert "sum of the 3 beam doses" in text and "beams 1, 2, 3" in text, text
    want = {(r["structure"], r["metric"]): r for r in plain["rows"]}
    got = {(r["structure"], r["metric"]): r for r in summed["rows"]}
    assert set(got) == set(want) and want
    assert summed["verdict"] == plain["verdict"]
    compared = 0
    for key, row in want.items():
        assert got[key]["status"] == row["status"], key
        if row["value"] is not None and "Gy" in str(row.get("unit", "Gy")):
            assert got[key]["value"] == pytest.approx(row["value"], abs=0.01), key
            compared += 1
    assert compared > 5


def test_a_subset_of_the_beams_is_refused_naming_the_missing_beam(cases, tmp_path, capsys):
    subset = tmp_path / "subset"
    shutil.copytree(cases["beams"], subset)
    (subset / "RTDOSE_beam3.dcm").unlink()
    rc, text, doc = _review(subset, tmp_path / "out", capsys)
    assert rc == 2, text
    assert "beam 3 is missing" in text and "beam doses alone are refused" in text, text
    assert "RTPLAN" in text and "Traceback" not in text


def test_beam_doses_on_different_grids_are_refused(cases, tmp_path, capsys):
    moved = tmp_path / "moved"
    shutil.copytree(cases["beams"], moved)
    ds = pydicom.dcmread(moved / "RTDOSE_beam2.dcm")
    ds.ImagePositionPatient = [float(v) + 1.5 for v in ds.ImagePositionPatient]
    fx.save(ds, moved / "RTDOSE_beam2.dcm")
    rc, text, _ = _review(moved, tmp_path / "out", capsys)
    assert rc == 2, text
    assert "another dose grid" in text and "RTDOSE_beam2.dcm" in text, text
