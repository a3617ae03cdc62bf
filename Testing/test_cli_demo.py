"""The README's first command end to end: ``sibspine demo`` and ``sibspine review`` as a user runs them."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO

pytestmark = pytest.mark.mrml

STATUSES = {"optimal", "acceptable", "met", "fail", "not_evaluable", "not_applicable"}


def run(*args, cwd=REPO):
    exe = Path(sys.executable).with_name("sibspine")
    return subprocess.run([str(exe), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)


def check_schema(doc):
    assert doc["format"] == "sibspine-metrics/2"
    assert isinstance(doc["case"], str) and doc["level"] == "T8" and doc["protocol"] == "mitsuyoshi2025"
    assert doc["verdict"] in ("pass", "fail", "incomplete")
    for row in doc["rows"]:
        assert set(row) >= {"structure", "metric", "value", "unit", "optimal", "mandatory", "status"}
        assert row["status"] in STATUSES
        assert row["value"] is None or isinstance(row["value"], float)
        assert row["optimal"] is None or isinstance(row["optimal"], str)
        assert row["mandatory"] is None or isinstance(row["mandatory"], str)
        assert row["unit"] in ("Gy", "cc", "%")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    proc = run("demo", "--out", out)
    return proc, out


def test_demo_prints_table_1_and_passes(demo_run, protocol):
    proc, out = demo_run
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for c in protocol.required_constraints:
        assert any(line.split()[:2] == [c.structure, c.metric] for line in lines), (c.structure, c.metric)
    assert "Verdict: PASS" in proc.stdout
    assert "Info:" not in proc.stdout + proc.stderr  # no VTK noise in a clinical printout


def test_demo_metrics_json(demo_run, protocol):
    from SIBSpineSBRTLib.protocol.evaluate import judge

    _, out = demo_run
    doc = json.loads((out / "metrics.json").read_text())
    check_schema(doc)
    assert doc["verdict"] == "pass"
    rows = doc["rows"]
    assert [(r["structure"], r["metric"]) for r in rows[:9]] == [
        (c.structure, c.metric) for c in protocol.required_constraints
    ]
    for r, c in zip(rows, protocol.constraints):
        assert judge(c, r["value"]) == r["status"]
    d90 = rows[1]
    assert d90["value"] == pytest.approx(30.0, abs=0.01)
    assert set(doc["volumes"]) == {"PTV", "PTV_Eval", "SpinalCord_PRV02"}
    assert "CTV" in doc["volumes"]["PTV"]["recipe"]


def test_demo_scene_reopens_with_derived_segments_and_results(demo_run):
    from SIBSpineSBRTLib.mrml import segmentations as segs
    from SIBSpineSBRTLib.mrml.results import RESULTS_TABLE_NAME, read_results_table
    from SIBSpineSBRTLib.mrml.scene import new_scene
    from SIBSpineSBRTLib.mrml.storage import load_scene_mrb

    _, out = demo_run
    ctx = new_scene()
    load_scene_mrb(ctx, out / "review.mrb")
    seg = ctx.scene.GetFirstNodeByClass("vtkMRMLSegmentationNode")
    names = [n for _, n in segs.segment_names(seg)]
    assert {"GTV", "CTV", "SpinalCord", "ThecalSac", "SpinalCanal", "PTV", "PTV_Eval", "SpinalCord_PRV02"} <= set(names)
    table = ctx.scene.GetFirstNodeByName(RESULTS_TABLE_NAME)
    rows = read_results_table(table)
    doc = json.loads((out / "metrics.json").read_text())
    assert [(r["structure"], r["metric"], r["status"]) for r in rows] == [
        (r["structure"], r["metric"], r["status"]) for r in doc["rows"]
    ]
    assert table.GetAttribute("SIBSpineSBRT.Verdict") == "pass"
    dose = ctx.scene.GetFirstNodeByName("Dose")
    from SIBSpineSBRTLib.mrml.volumes import dose_unit

    assert dose.GetAttribute("DicomRtImport.DoseVolume") == "1" and dose_unit(ctx.scene, dose) == "GY"


def test_demo_is_deterministic(demo_run, tmp_path):
    _, out = demo_run
    proc = run("demo", "--out", tmp_path)
    assert proc.returncode == 0
    assert (tmp_path / "metrics.json").read_bytes() == (out / "metrics.json").read_bytes()


def test_missing_cord_is_incomplete_with_exit_2(tmp_path, thoracic_case):
    proc = run("demo", "--out", tmp_path, "--drop-segment", "SpinalCord")
    assert proc.returncode == 2
    doc = json.loads((tmp_path / "metrics.json").read_text())
    check_schema(doc)
    assert doc["verdict"] == "incomplete"
    prv = [r for r in doc["rows"] if r["structure"] == "SpinalCord_PRV02"]
    assert len(prv) == 1 and prv[0]["status"] == "not_evaluable" and prv[0]["value"] is None
    assert "No segment for SpinalCord" in prv[0]["message"]
    found = ", ".join(n for n in thoracic_case.segments if n != "SpinalCord")
    assert f"Segments found: {found}." in prv[0]["message"]
    assert "NOT EVALUABLE" in proc.stdout and "Verdict: INCOMPLETE" in proc.stdout
    assert len([r for r in doc["rows"] if r["structure"] in ("PTV_Eval", "GTV", "SpinalCord_PRV02", "ThecalSac")]) == 9


def test_review_from_files_matches_the_demo(demo_run, tmp_path, thoracic_case):
    """Round trip: the demo case written as .nrrd/.seg.nrrd files and reviewed from them gives the same
    metrics as the in-memory demo."""
    from SIBSpineSBRTLib.mrml import storage
    from SIBSpineSBRTLib.mrml.case import add_case_nodes
    from SIBSpineSBRTLib.mrml.scene import new_scene

    ctx = new_scene()
    nodes = add_case_nodes(ctx.scene, thoracic_case)
    storage.save_volume(ctx.scene, nodes.ct, tmp_path / "ct.nrrd")
    storage.save_volume(ctx.scene, nodes.dose, tmp_path / "dose.nrrd")
    storage.save_segmentation(ctx.scene, nodes.segmentation, tmp_path / "structures.seg.nrrd")
    out = tmp_path / "out"
    args = [
        "review",
        "--segmentation",
        tmp_path / "structures.seg.nrrd",
        "--dose",
        tmp_path / "dose.nrrd",
        "--ct",
        tmp_path / "ct.nrrd",
        "--level",
        "T8",
        "--out",
        out,
    ]
    proc = run(*args, "--dose-unit", "Gy", "--name", thoracic_case.name)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = json.loads((out / "metrics.json").read_text())
    want = json.loads((demo_run[1] / "metrics.json").read_text())
    assert [(r["structure"], r["metric"], r["status"]) for r in got["rows"]] == [
        (r["structure"], r["metric"], r["status"]) for r in want["rows"]
    ]
    for a, b in zip(got["rows"], want["rows"]):
        assert a["value"] == pytest.approx(b["value"], abs=2e-3), a  # float32 dose file vs in-memory float64

    # The same files without the dose unit: refused before any work, exit 2, the fix named; the earlier
    # run's outputs are left exactly as they were.
    before = (out / "metrics.json").read_bytes()
    proc = run(*args)
    assert proc.returncode == 2 and "--dose-unit" in proc.stderr
    assert (out / "metrics.json").read_bytes() == before


def test_review_from_files_places_the_mr_three_ways(tmp_path, thoracic_case):
    """``review --mr``: registered (checked against the phantom's known misregistration), through a given
    transform file, or as stored; the report shows the fusion and the messages say which was done."""
    import slicer

    from SIBSpineSBRTLib.geometry.masks import Mask
    from SIBSpineSBRTLib.mrml import storage
    from SIBSpineSBRTLib.mrml.case import add_case_nodes
    from SIBSpineSBRTLib.mrml.scene import new_scene
    from SIBSpineSBRTLib.mrml.volumes import add_volume, vtk_matrix4
    from SIBSpineSBRTLib.registration.mrml_transform import node_to_world
    from SIBSpineSBRTLib.registration.rigid import target_registration_error

    c = thoracic_case
    ctx = new_scene()
    nodes = add_case_nodes(ctx.scene, c)
    storage.save_volume(ctx.scene, nodes.ct, tmp_path / "ct.nrrd")
    storage.save_volume(ctx.scene, nodes.dose, tmp_path / "dose.nrrd")
    storage.save_segmentation(ctx.scene, nodes.segmentation, tmp_path / "s.seg.nrrd")
    storage.save_volume(ctx.scene, add_volume(ctx.scene, c.mr_t1, c.mr_geometry, "T1"), tmp_path / "t1.nrrd")
    truth = slicer.vtkMRMLLinearTransformNode()
    ctx.scene.AddNode(truth)
    truth.SetMatrixTransformToParent(vtk_matrix4(c.mr_to_ct))
    storage.save_transform(ctx.scene, truth, tmp_path / "mr_to_ct.h5")
    base = ["review", "--segmentation", tmp_path / "s.seg.nrrd", "--dose", tmp_path / "dose.nrrd"]
    base += ["--dose-unit", "Gy", "--level", "T8", "--ct", tmp_path / "ct.nrrd", "--mr", tmp_path / "t1.nrrd"]

    def placed(out, *extra):
        proc = run(*base, "--out", out, *extra)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        scene = new_scene()
        storage.load_scene_mrb(scene, out / "review.mrb")
        assert "Axial MR over the CT" in (out / "report.html").read_text(encoding="utf-8")
        messages = json.loads((out / "metrics.json").read_text())["messages"]
        return node_to_world(scene.scene.GetFirstNodeByName("MR")), messages[-1]

    gtv = Mask(c.segments["GTV"], c.ct_geometry).centroid_ras()
    points = gtv + np.array([[0.0, 0.0, 0.0], [20.0, 0.0, 0.0], [0.0, 20.0, 15.0]])  # RAS mm around the target
    registered, how = placed(tmp_path / "registered", "--register")
    assert "registered to the CT" in how and "around the target" in how
    assert target_registration_error(registered, c.mr_to_ct, points).max() < 1.0
    given, how = placed(tmp_path / "given", "--mr-transform", tmp_path / "mr_to_ct.h5")
    assert np.allclose(given, c.mr_to_ct, atol=1e-6) and "through the given transform" in how
    stored, how = placed(tmp_path / "stored")
    assert np.allclose(stored, np.eye(4)) and "as stored" in how

    proc = run(*base[:-2], "--out", tmp_path / "x", "--register")
    assert proc.returncode == 2 and "--mr" in proc.stderr
    no_ct = [a for a in base if a not in ("--ct", tmp_path / "ct.nrrd")]
    proc = run(*no_ct, "--out", tmp_path / "x")
    assert proc.returncode == 2 and "--ct" in proc.stderr


def test_bad_input_exit_2(tmp_path):
    (tmp_path / "x.seg.nrrd").write_text("garbage")
    proc = run(
        "review",
        "--segmentation",
        tmp_path / "x.seg.nrrd",
        "--dose",
        tmp_path / "none.nrrd",
        "--dose-unit",
        "Gy",
        "--level",
        "T8",
        "--out",
        tmp_path,
    )
    assert proc.returncode == 2 and "x.seg.nrrd" in proc.stderr
    proc = run("demo", "--out", tmp_path, "--role", "SpinalCord")
    assert proc.returncode == 2 and "ROLE=SEGMENTNAME" in proc.stderr
    proc = run("demo", "--out", tmp_path, "--protocol", tmp_path / "nope.json")
    assert proc.returncode == 2 and "nope.json" in proc.stderr


def test_python_dash_m_entry():
    proc = subprocess.run([sys.executable, "-m", "SIBSpineSBRTLib", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and "SIBSpineSBRT" in proc.stdout


def test_normalise_writes_the_what_if(tmp_path, demo_case):
    """A hot plan (dose x 1.05 on disk) normalised back: PTV_Eval D90% = 30 Gy, original metrics untouched."""
    import numpy as np

    from SIBSpineSBRTLib.mrml import storage
    from SIBSpineSBRTLib.mrml.case import add_case_nodes
    from SIBSpineSBRTLib.mrml.scene import new_scene
    from SIBSpineSBRTLib.mrml.volumes import add_volume

    ctx = new_scene()
    nodes = add_case_nodes(ctx.scene, demo_case)
    hot = add_volume(ctx.scene, (demo_case.dose_gy * 105.0).astype(np.float32), demo_case.dose_geometry, "Hot")
    storage.save_volume(ctx.scene, hot, tmp_path / "hot_cgy.nrrd")
    storage.save_segmentation(ctx.scene, nodes.segmentation, tmp_path / "s.seg.nrrd")
    out = tmp_path / "out"
    proc = run(
        "review",
        "--segmentation",
        tmp_path / "s.seg.nrrd",
        "--dose",
        tmp_path / "hot_cgy.nrrd",
        "--dose-unit",
        "cGy",
        "--level",
        "T8",
        "--out",
        out,
        "--normalise",
    )
    assert proc.returncode == 1  # PTV_Eval D90% = 31.5 Gy breaks the 30.3 Gy mandatory maximum
    first = json.loads((out / "metrics.json").read_text())
    what = json.loads((out / "whatif_normalised" / "metrics.json").read_text())
    assert first["rows"][1]["value"] == pytest.approx(31.5, abs=0.01) and first["rows"][1]["status"] == "fail"
    assert what["rows"][1]["value"] == pytest.approx(30.0, abs=1e-3) and what["verdict"] == "pass"
    assert "x 0.95" in proc.stdout


def test_dvh_command(tmp_path, demo_case):
    from SIBSpineSBRTLib.dose.dvh import compute_dvh
    from SIBSpineSBRTLib.dose.grid import DoseGrid
    from SIBSpineSBRTLib.geometry.masks import Mask
    from SIBSpineSBRTLib.mrml import storage
    from SIBSpineSBRTLib.mrml.case import add_case_nodes
    from SIBSpineSBRTLib.mrml.scene import new_scene

    ctx = new_scene()
    nodes = add_case_nodes(ctx.scene, demo_case)
    storage.save_volume(ctx.scene, nodes.dose, tmp_path / "dose.nrrd")
    storage.save_segmentation(ctx.scene, nodes.segmentation, tmp_path / "s.seg.nrrd")
    proc = run(
        "dvh",
        "--dose",
        tmp_path / "dose.nrrd",
        "--dose-unit",
        "Gy",
        "--segmentation",
        tmp_path / "s.seg.nrrd",
        "--structure",
        "GTV",
        "--structure",
        "SpinalCord",
        "--metric",
        "D2%",
        "--metric",
        "D0.03cc",
        "--metric",
        "V40Gy",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["dose_unit"] == "Gy" and set(doc["structures"]) == {"GTV", "SpinalCord"}
    dose = DoseGrid(demo_case.dose_gy.astype("float32"), demo_case.dose_geometry)
    gtv = compute_dvh(Mask(demo_case.segments["GTV"], demo_case.ct_geometry, "GTV"), dose)
    assert doc["structures"]["GTV"]["D2%"] == pytest.approx(gtv.metric("D2%"), abs=1e-3)
    assert doc["structures"]["GTV"]["V40Gy"] == pytest.approx(gtv.metric("V40Gy"), abs=1e-3)
    assert doc["structures"]["GTV"]["volume_cc"] == pytest.approx(gtv.volume_cc, abs=1e-3)
    bad = run(
        "dvh",
        "--dose",
        tmp_path / "dose.nrrd",
        "--dose-unit",
        "Gy",
        "--segmentation",
        tmp_path / "s.seg.nrrd",
        "--metric",
        "D2",
    )
    assert bad.returncode == 2 and "Unknown DVH metric" in bad.stderr
