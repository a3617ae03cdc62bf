"""A case written as DICOM (CT, RTSTRUCT, RTPLAN, RTDOSE) and read back: same images, masks, dose and
review as in memory."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO

pytestmark = pytest.mark.mrml


@pytest.fixture(scope="module")
def exported(tmp_path_factory, demo_case):
    from SIBSpineSBRTLib.caseio.dicom_write import export_case
    from SIBSpineSBRTLib.geometry.masks import Mask

    folder = tmp_path_factory.mktemp("export") / "case"
    masks = {n: Mask(m, demo_case.ct_geometry, n) for n, m in demo_case.segments.items()}
    export_case(folder, demo_case, masks, demo_case.colors)
    return folder


def test_read_back_equals_what_was_written(exported, demo_case):
    from SIBSpineSBRTLib.caseio.case_loader import load_dicom_case
    from SIBSpineSBRTLib.mrml import segmentations as segs
    from SIBSpineSBRTLib.mrml.scene import new_scene
    from SIBSpineSBRTLib.mrml.volumes import dose_grid_from_node, volume_array, volume_geometry

    ctx = new_scene()
    case = load_dicom_case(exported, ctx)
    assert volume_geometry(case.ct).same_grid(demo_case.ct_geometry, 1e-3)
    assert np.array_equal(volume_array(case.ct), demo_case.ct)
    dose = dose_grid_from_node(ctx.scene, case.dose)
    assert dose.geometry.same_grid(demo_case.dose_geometry, 1e-3)
    assert np.allclose(dose.array, demo_case.dose_gy, atol=1e-6 * demo_case.dose_gy.max())
    masks = segs.read_segments(case.segmentation, geometry=case.ct_series.geometry)
    for name, m in demo_case.segments.items():
        assert np.array_equal(masks[name].array, m), name
    assert case.prescription.fractions == 5 and case.prescription.total_dose_gy == 30.0
    assert case.prescription.plan_label == "SIB level T8"


def test_review_of_the_export_matches_the_in_memory_demo(exported, tmp_path):
    """``sibspine review --dicom`` on the exported case (level read from the RTPLAN label) gives the
    demo's metrics.json values within 0.05 Gy."""
    exe = Path(sys.executable).with_name("sibspine")
    demo = subprocess.run([str(exe), "demo", "--out", tmp_path / "demo", "--no-report"], cwd=REPO, capture_output=True)
    review = subprocess.run(
        [str(exe), "review", "--dicom", exported, "--out", tmp_path / "dicom", "--no-report"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert review.returncode == demo.returncode == 0, review.stderr
    a = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    b = json.loads((tmp_path / "dicom" / "metrics.json").read_text())
    assert b["level"] == "T8" and b["verdict"] == a["verdict"]
    for x, y in zip(a["rows"], b["rows"]):
        assert (x["structure"], x["metric"], x["status"]) == (y["structure"], y["metric"], y["status"])
        assert y["value"] == pytest.approx(x["value"], abs=0.05), x
