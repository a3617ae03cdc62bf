"""Plan identity in metrics.json (``inputs``) and the report header, and no patient name or ID anywhere in the
outputs unless asked."""

import json
import re
import zipfile

import pydicom
import pytest

from SIBSpineSBRTLib.frontends.cli import main

pytestmark = pytest.mark.mrml

NAME, PATIENT_ID, BIRTH = "Doewick^Janelle", "SECRET-4711", "19450102"  # long enough never to occur by chance


@pytest.fixture(scope="module")
def named_case(tmp_path_factory):
    """The thoracic phantom's DICOM export, every file carrying a patient name, ID and birth date."""
    root = tmp_path_factory.mktemp("identity")
    assert main(["demo", "--export-dicom", str(root / "case"), "--out", str(root / "demo"), "--no-report"]) == 0
    for f in (root / "case").rglob("*.dcm"):
        ds = pydicom.dcmread(f)
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = NAME, PATIENT_ID, BIRTH
        ds.save_as(f)
    return root / "case"


def output_texts(out):
    from pypdf import PdfReader

    for f in out.rglob("*"):
        if f.suffix in (".json", ".csv"):
            yield f.name, f.read_text(encoding="utf-8")
        elif f.suffix == ".html":  # without the embedded images' base64 (random letters)
            yield f.name, re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", f.read_text(encoding="utf-8"))
        elif f.suffix == ".pdf":
            yield f.name, "".join(p.extract_text() for p in PdfReader(f).pages) + str(PdfReader(f).metadata)
        elif f.suffix == ".mrb":
            with zipfile.ZipFile(f) as z:
                for n in z.namelist():
                    yield f"{f.name}:{n}", z.read(n).decode("latin-1")


def test_identity_and_no_patient_data(named_case, tmp_path):
    out = tmp_path / "out"
    assert main(["review", "--dicom", str(named_case), "--out", str(out)]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    inputs = doc["inputs"]
    plan = pydicom.dcmread(named_case / "RTPLAN.dcm")
    assert inputs["rtplan"]["sop_instance_uid"] == plan.SOPInstanceUID and inputs["rtplan"]["label"] == plan.RTPlanLabel
    assert inputs["rtplan"]["prescription"] == {
        "total_dose_gy": 30.0,
        "fractions": 5,
        "dose_per_fraction_gy": 6.0,
        "as_written": "30 Gy in 5 fractions",
    }
    assert inputs["rtdose"]["sop_class"] == "RT Dose Storage" and inputs["rtdose"]["grid_spacing_mm"] == [2.5] * 3
    assert inputs["ct"]["slices"] == len(list((named_case / "CT").iterdir()))
    assert inputs["level_source"] == "T8 (RTPLAN label)"
    assert any("coarser than 2 mm" in m for m in doc["messages"])
    texts = dict(output_texts(out))
    assert {"metrics.json", "metrics.csv", "report.html", "report.pdf"} <= set(texts)
    assert plan.SOPInstanceUID in texts["report.pdf"].replace("\n", "")
    for where, text in texts.items():
        for secret in ("Doewick", "Janelle", PATIENT_ID, BIRTH):
            assert secret not in text, (secret, where)
