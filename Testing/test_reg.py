"""DICOM Spatial Registration (REG): a rigid REG written and read back, a deformable one refused, and an MR on
another frame of reference fused on the CT through the REG that ``sibspine demo --export-dicom`` writes."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from conftest import REPO

FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])


def _rigid(angles_deg, shift):
    a, b, c = np.radians(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    m = np.eye(4)
    m[:3, :3] = rz @ ry @ rx
    m[:3, 3] = shift
    return m


def _write(path, matrix, ct_frame="1.2.3.1", mr_frame="1.2.3.2"):
    from SIBSpineSBRTLib.caseio.dicom_write import Study
    from SIBSpineSBRTLib.caseio.reg import write_registration

    return write_registration(path, Study(), ct_frame, mr_frame, matrix)


def test_round_trip_of_a_rigid_reg(tmp_path):
    from SIBSpineSBRTLib.caseio.reg import SPATIAL_REGISTRATION, read_registration

    m = _rigid((3.1, -2.2, 7.3), (12.345678, -101.25, 33.3))
    path = _write(tmp_path / "REG.dcm", m)
    ds = pydicom.dcmread(str(path))
    assert ds.SOPClassUID == SPATIAL_REGISTRATION == ds.file_meta.MediaStorageSOPClassUID
    assert ds.Modality == "REG" and ds.FrameOfReferenceUID == "1.2.3.1"
    assert [str(i.FrameOfReferenceUID) for i in ds.RegistrationSequence] == ["1.2.3.1", "1.2.3.2"]
    reg = read_registration(path)
    assert np.allclose(reg.transform("1.2.3.2", "1.2.3.1"), m, rtol=0, atol=1e-9)
    assert np.allclose(reg.transform("1.2.3.1", "1.2.3.2"), np.linalg.inv(m), rtol=0, atol=1e-9)
    assert np.allclose(reg.transform("1.2.3.1", "1.2.3.1"), np.eye(4))


def test_reg_stated_the_other_way_or_through_a_common_frame(tmp_path):
    """CT->MR stated (the MR frame registered), or each frame into a third one: the same MR->CT."""
    from pydicom.uid import generate_uid

    from SIBSpineSBRTLib.caseio.reg import read_registration

    mr_to_ct = _rigid((1.0, 2.0, -4.0), (5.0, -6.0, 7.5))
    reg = read_registration(_write(tmp_path / "a.dcm", np.linalg.inv(mr_to_ct), "1.2.3.2", "1.2.3.1"))
    assert np.allclose(reg.transform("1.2.3.2", "1.2.3.1"), mr_to_ct, atol=1e-9)
    common = generate_uid()
    ct_to_common = _rigid((-2.0, 0.5, 1.0), (1.0, 2.0, 3.0))
    path = _write(tmp_path / "b.dcm", ct_to_common, common, "1.2.3.1")
    ds = pydicom.dcmread(str(path))
    ds.RegistrationSequence[0].FrameOfReferenceUID = "1.2.3.2"  # the MR into the common frame instead of identity
    mr_to_common = ct_to_common @ mr_to_ct
    matrix = ds.RegistrationSequence[0].MatrixRegistrationSequence[0].MatrixSequence[0]
    matrix.FrameOfReferenceTransformationMatrix = [f"{v:.12g}" for v in mr_to_common.ravel()]
    ds.save_as(str(path))
    reg = read_registration(path)
    assert np.allclose(reg.transform("1.2.3.2", "1.2.3.1"), mr_to_ct, atol=1e-9)


def test_deformable_and_non_rigid_regs_are_refused(tmp_path):
    from SIBSpineSBRTLib.caseio.reg import DEFORMABLE_SPATIAL_REGISTRATION, RegistrationError, read_registration

    path = _write(tmp_path / "REG.dcm", np.eye(4))
    ds = pydicom.dcmread(str(path))
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = DEFORMABLE_SPATIAL_REGISTRATION
    ds.save_as(str(tmp_path / "DREG.dcm"))
    with pytest.raises(RegistrationError, match="deformable"):
        read_registration(tmp_path / "DREG.dcm")
    ds = pydicom.dcmread(str(path))
    ds.RegistrationSequence[1].MatrixRegistrationSequence[0].MatrixSequence[
        0
    ].FrameOfReferenceTransformationMatrixType = "RIGID_SCALE"
    ds.save_as(str(tmp_path / "SREG.dcm"))
    with pytest.raises(RegistrationError, match="RIGID_SCALE"):
        read_registration(tmp_path / "SREG.dcm")


@pytest.fixture(scope="module")
def demo_export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("regdemo")
    exe = str(Path(sys.executable).with_name("sibspine"))
    proc = subprocess.run(
        [exe, "demo", "--export-dicom", str(folder / "case"), "--out", str(folder / "demo"), "--no-report"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert (folder / "case" / "REG.dcm").exists(), proc.stdout + proc.stderr
    return folder


@pytest.mark.mrml
def test_review_dicom_fuses_the_mr_through_the_reg(demo_export, thoracic_case, protocol):
    from SIBSpineSBRTLib.caseio.case_loader import load_dicom_case
    from SIBSpineSBRTLib.mrml.scene import new_scene
    from SIBSpineSBRTLib.review.dicom_review import mr_for_fusion, review_dicom_case

    exe = str(Path(sys.executable).with_name("sibspine"))
    out = demo_export / "review"
    proc = subprocess.run(
        [exe, "review", "--dicom", str(demo_export / "case"), "--out", str(out), "--no-report"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode in (0, 1, 2) and "Traceback" not in proc.stderr, proc.stderr
    messages = json.loads((out / "metrics.json").read_text())["messages"]
    text = " ".join(m if isinstance(m, str) else json.dumps(m) for m in messages)
    assert "placed on the CT through the DICOM registration REG.dcm (rigid)" in text
    assert "not registered" not in text

    case = load_dicom_case(demo_export / "case", new_scene())
    review_dicom_case(case, protocol)
    mr, mr_to_ct = mr_for_fusion(case)
    assert mr is not None
    assert np.allclose(mr_to_ct, thoracic_case.mr_to_ct, rtol=0, atol=1e-6)
    assert sum("REG.dcm (rigid)" in m for m in case.messages) == 1


@pytest.mark.mrml
def test_reg_not_relating_the_ct_is_ignored(demo_export, tmp_path):
    from pydicom.uid import generate_uid

    from SIBSpineSBRTLib.caseio.case_loader import load_dicom_case
    from SIBSpineSBRTLib.mrml.scene import new_scene
    from SIBSpineSBRTLib.review.dicom_review import mr_for_fusion

    folder = tmp_path / "case"
    shutil.copytree(demo_export / "case", folder)
    ds = pydicom.dcmread(str(folder / "REG.dcm"))
    other = generate_uid()
    ds.FrameOfReferenceUID = other
    ds.RegistrationSequence[0].FrameOfReferenceUID = other
    ds.save_as(str(folder / "REG.dcm"))
    case = load_dicom_case(folder, new_scene())
    assert any("REG.dcm" in m and "none of them the planning CT's" in m and "ignored" in m for m in case.messages)
    assert any("not registered" in m for m in case.messages)
    assert mr_for_fusion(case) == (None, None)
