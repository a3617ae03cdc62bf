"""Structure intake never passes what it did not check (issue 12): two structures that could fill one role are
an error naming each (ROI number or segment ID, volume) with the ``--role`` that chooses it; ``--role`` for a
derived structure is refused; a self-intersecting contour leaves its ROI out, named, instead of being read."""

import json
import time

import dicom_fixtures as fx
import numpy as np
import pytest

from SIBSpineSBRTLib.protocol.model import ProtocolError


def circle_at(roi_z, cx, cy, r, n=48):
    return fx.circle(cx, cy, r, roi_z, n=n)


def fixture_zs(lo, hi):
    return [float(z) for z in (fx.CT_GRID.ipp(k)[2] for k in range(fx.CT_GRID.slices)) if lo <= z <= hi]


def write_case(folder, extra=(), replace=None):
    """The synthetic DICOM case (``dicom_fixtures.make_case``) with its structure set rewritten: ``replace``
    maps a fixture ROI key to the Roi written instead; ``extra`` are (position, Roi) inserted into the list."""
    case = fx.make_case(folder, with_mr=False)
    rois = [(replace or {}).get(key, roi) for key, roi in case.rois.items()]
    for position, roi in extra:
        rois.insert(position, roi)
    fx.write_rtstruct(case.rtstruct_path, case.ct, rois)
    return case


def decoy_cord(name="SpinalCord"):
    """A small ROI on two slices far from the cord (the cord of the fixture is at (0.23, 9.91), radius 4 mm)."""
    return fx.Roi(name, [circle_at(z, -15.0, -15.0, 2.0) for z in fixture_zs(8.0, 10.0)], (255, 255, 0), "ORGAN")


# -- roles: pure ---------------------------------------------------------------------------------------------


def test_resolve_roles_lists_each_candidate_with_its_origin_and_volume(protocol):
    from SIBSpineSBRTLib.protocol.roles import StructureInfo, resolve_roles

    infos = {
        "SpinalCord [ROI 3]": StructureInfo("SpinalCord [ROI 3]", "SpinalCord", roi_number=3, volume_cc=0.05),
        "SpinalCord [ROI 7]": StructureInfo("SpinalCord [ROI 7]", "SpinalCord", roi_number=7, volume_cc=2.41),
        "CTV": StructureInfo("CTV", "CTV", roi_number=1, volume_cc=30.0),
    }
    with pytest.raises(ProtocolError) as exc:
        resolve_roles(protocol, list(infos), None, infos)
    text = str(exc.value)
    assert "'SpinalCord' (ROI 3, 0.05 cc)" in text and "'SpinalCord' (ROI 7, 2.41 cc)" in text
    assert "--role SpinalCord=ROI:3" in text and "--role SpinalCord=ROI:7" in text
    res = resolve_roles(protocol, list(infos), {"SpinalCord": "ROI:7"}, infos)
    assert res.get("SpinalCord") == "SpinalCord [ROI 7]" and res.get("CTV") == "CTV"
    assert resolve_roles(protocol, list(infos), {"SpinalCord": "SpinalCord [ROI 3]"}, infos).get("SpinalCord") == (
        "SpinalCord [ROI 3]"
    )
    with pytest.raises(ProtocolError, match="2 structures are named SpinalCord"):
        resolve_roles(protocol, list(infos), {"SpinalCord": "SpinalCord"}, infos)
    with pytest.raises(ProtocolError, match="no ROI number 9"):
        resolve_roles(protocol, list(infos), {"SpinalCord": "ROI:9"}, infos)


def test_a_name_and_an_alias_or_a_folded_name_are_ambiguous(protocol):
    from SIBSpineSBRTLib.protocol.roles import StructureInfo, resolve_roles

    segs = {
        "SpinalCord": StructureInfo("SpinalCord", "SpinalCord", segment_id="Segment_1", volume_cc=1.5),
        "Cord": StructureInfo("Cord", "Cord", segment_id="Segment_2", volume_cc=0.1),
    }
    with pytest.raises(ProtocolError) as exc:
        resolve_roles(protocol, list(segs), None, segs)
    assert "segment ID Segment_1, 1.50 cc" in str(exc.value) and "--role SpinalCord=ID:Segment_2" in str(exc.value)
    assert resolve_roles(protocol, list(segs), {"SpinalCord": "ID:Segment_1"}, segs).get("SpinalCord") == "SpinalCord"
    # plain names (no origin known): still never a guess
    with pytest.raises(ProtocolError, match="could be the GTV"):
        resolve_roles(protocol, ["GTV", "gtv"])
    with pytest.raises(ProtocolError, match="could be the GTV"):
        resolve_roles(protocol, ["GTV", "GTV"])


def test_role_for_a_derived_structure_is_refused(protocol):
    from SIBSpineSBRTLib.protocol.roles import resolve_roles

    with pytest.raises(ProtocolError) as exc:
        resolve_roles(protocol, ["CTV", "PTV_Eval"], {"PTV_Eval": "PTV_Eval"})
    assert str(exc.value).startswith(
        "--role PTV_Eval=PTV_Eval: PTV_Eval is built by SIBSpineSBRT from the CTV and the canal; it cannot be chosen"
    )
    for role in ("PTV", "SpinalCord_PRV02"):
        with pytest.raises(ProtocolError, match=f"{role} is built by SIBSpineSBRT"):
            resolve_roles(protocol, ["CTV"], {role: "NO_SUCH"})


def test_structure_keys_qualify_every_folded_duplicate():
    from SIBSpineSBRTLib.protocol.roles import structure_keys

    keys = structure_keys([("SpinalCord", 4, None), ("GTV", 1, None), ("spinal cord", 7, None), ("CTV", 2, None)])
    assert keys == ["SpinalCord [ROI 4]", "GTV", "spinal cord [ROI 7]", "CTV"]
    assert structure_keys([("Cord", None, "Cord"), ("Cord", None, "Cord_1")]) == ["Cord [Cord]", "Cord [Cord_1]"]


# -- contour checks: pure ----------------------------------------------------------------------------------------


def test_crossing_edges_finds_bow_ties_and_spares_keyholes():
    from SIBSpineSBRTLib.caseio.rtstruct_read import crossing_edges

    assert crossing_edges(np.array([[0, 0], [2, 2], [2, 0], [0, 2]], float)) == (0, 2)
    assert crossing_edges(np.array([[0, 0], [2, 0], [2, 2], [0, 2]], float)) is None
    assert crossing_edges(fx.keyhole(0.1, 0.2, 8, 4, 0.0, n=180)[:, :2]) is None  # the cut runs along itself
    t = np.linspace(0, 2 * np.pi, 1000, endpoint=False)
    star = np.column_stack([(10 + 3 * np.sin(7 * t)) * np.cos(t), (10 + 3 * np.sin(7 * t)) * np.sin(t)])
    assert crossing_edges(star) is None
    twisted = star.copy()
    twisted[[400, 401]] = twisted[[401, 400]]  # two neighbours swapped: a tiny bow-tie
    assert crossing_edges(twisted) is not None
    start = time.perf_counter()
    for _ in range(20):
        crossing_edges(star)
    assert (time.perf_counter() - start) / 20 < 0.05  # a 1000-point contour in well under 50 ms


def test_repairs_are_unambiguous_and_refusals_named():
    from SIBSpineSBRTLib.caseio.rtstruct_read import check_contour

    ring = fx.circle(1.0, 2.0, 5.0, 3.0, n=12)
    closed = check_contour(np.vstack([ring, ring[:1]]))
    assert closed.closing_point and not closed.problem and np.array_equal(closed.points, ring)
    doubled = check_contour(np.repeat(ring, 2, axis=0))
    assert doubled.repeated_points == 12 and np.array_equal(doubled.points, ring)
    assert "2 distinct points" in check_contour(np.array([ring[0], ring[0], ring[1], ring[0]])).problem
    bow = np.array([[0, 0, 3], [10, 10, 3], [10, 0, 3], [0, 10, 3]], float)
    assert "crosses itself" in check_contour(bow).problem
    # the same bow-tie in a sagittal plane
    assert "crosses itself" in check_contour(bow[:, [2, 0, 1]]).problem


# -- RTSTRUCT reading (pydicom only) -----------------------------------------------------------------------------


def test_repeated_closing_and_consecutive_points_read_as_without(tmp_path):
    from SIBSpineSBRTLib.caseio.dicom_image import read_image_series
    from SIBSpineSBRTLib.caseio.dicom_scan import scan_folder
    from SIBSpineSBRTLib.caseio.errors import DicomWarning
    from SIBSpineSBRTLib.caseio.rtstruct_read import read_rtstruct, structure_set_masks

    grid = fx.Grid(rows=40, cols=40, slices=6, pixel_spacing=(0.5, 0.5), slice_step=1.0)
    ct = fx.write_image_series(tmp_path / "ct", grid, np.zeros((6, 40, 40)))
    zs = [float(grid.ipp(k)[2]) for k in range(1, 5)]
    plain = [fx.circle(0.1, 0.2, 6, z, n=40) for z in zs]
    closed = [np.vstack([c, c[:1]]) for c in plain]
    stuttering = [np.insert(c, 7, c[7], axis=0) for c in plain]
    fx.write_rtstruct(tmp_path / "a", ct, [fx.Roi("Plain", plain)])
    fx.write_rtstruct(tmp_path / "b", ct, [fx.Roi("Plain", closed), fx.Roi("Other", stuttering)])
    a = read_rtstruct(tmp_path / "a")
    with pytest.warns(DicomWarning) as caught:
        b = read_rtstruct(tmp_path / "b")
    notes = [str(w.message) for w in caught]
    assert any("'Plain' (ROI number 1): 4 contours repeat the first point at the end" in m for m in notes)
    assert any("'Other' (ROI number 2): 4 points repeat the point before" in m for m in notes)
    assert b.messages == notes
    for x, y in zip(a.roi("Plain").contours, b.roi("Plain").contours):
        assert np.array_equal(x.points_lps, y.points_lps)
    for x, y in zip(a.roi("Plain").contours, b.roi("Other").contours):
        assert np.array_equal(x.points_lps, y.points_lps)
    geom = read_image_series(scan_folder(tmp_path / "ct").image_series("CT")[0]).geometry
    ma, mb = structure_set_masks(a, geom), structure_set_masks(b, geom)
    assert np.array_equal(ma["Plain"].array, mb["Plain"].array) and np.array_equal(ma["Plain"].array, mb["Other"].array)
    assert a.roi("Plain").to_contour_structure().volume_cc == b.roi("Plain").to_contour_structure().volume_cc


def test_a_bow_tie_contour_leaves_its_roi_out_named(tmp_path):
    from SIBSpineSBRTLib.caseio.errors import DicomWarning
    from SIBSpineSBRTLib.caseio.rtstruct_read import read_rtstruct

    zs = fixture_zs(6.0, 14.0)
    contours = [fx.circle(3.07, -5.41, 5.03, z) for z in zs]
    contours[2] = np.array([[-2, -10, zs[2]], [8, 0, zs[2]], [8, -10, zs[2]], [-2, 0, zs[2]]], float)
    case = write_case(tmp_path / "case", replace={"GTV": fx.Roi("GTV", contours, (255, 0, 0), "GTV")})
    with pytest.warns(DicomWarning, match="left out"):
        ss = read_rtstruct(case.rtstruct_path)
    assert "GTV" not in ss.roi_names and [r.name for r in ss.refused] == ["GTV"]
    problem = ss.refused[0].problem
    assert "ROI 'GTV' (ROI number 2) is left out of the case" in problem
    assert f"on the slice at DICOM z = {zs[2]:.2f} mm crosses itself" in problem
    assert "Redraw or repair the contour in the planning system" in problem


def test_contours_between_ct_slices_are_warned_about(tmp_path):
    from SIBSpineSBRTLib.caseio.dicom_image import read_image_series
    from SIBSpineSBRTLib.caseio.dicom_scan import scan_folder
    from SIBSpineSBRTLib.caseio.errors import DicomWarning
    from SIBSpineSBRTLib.caseio.rtstruct_read import read_rtstruct, structure_set_masks

    grid = fx.Grid(rows=30, cols=30, slices=6, pixel_spacing=(0.6, 0.6), slice_step=2.0)
    ct = fx.write_image_series(tmp_path / "ct", grid, np.zeros((6, 30, 30)))
    z = float(grid.ipp(2)[2]) + 1.0  # half way between two slices
    fx.write_rtstruct(tmp_path / "rs", ct, [fx.Roi("Between", [fx.circle(0.1, 0.1, 4.0, z)])])
    geom = read_image_series(scan_folder(tmp_path / "ct").image_series("CT")[0]).geometry
    with pytest.warns(DicomWarning, match=rf"'Between' \(ROI number 1\) has contours between the slices .*{z:.2f}"):
        structure_set_masks(read_rtstruct(tmp_path / "rs"), geom)


# -- whole cases through MRML ------------------------------------------------------------------------------------


@pytest.mark.mrml
def test_two_rois_named_spinalcord_are_an_error_then_chosen_by_roi_number(tmp_path, scene, protocol):
    from SIBSpineSBRTLib.caseio.case_loader import load_dicom_case
    from SIBSpineSBRTLib.review.dicom_review import review_dicom_case

    real = fx.case_rois(fx.CT_GRID)["SpinalCord"]
    cord = fx.Roi("SpinalCord", real.contours, real.color, "ORGAN")
    case_files = write_case(tmp_path / "case", extra=[(0, decoy_cord())], replace={"SpinalCord": cord})
    case = load_dicom_case(case_files.folder, scene)
    # decoy is ROI 1, the real cord ROI 5 (CTV 2, GTV 3, SpinalCanal 4)
    assert case.segment_names == ["SpinalCord [ROI 1]", "CTV", "GTV", "SpinalCanal", "SpinalCord [ROI 5]", "Ring"]
    assert any("each is kept as its own structure: SpinalCord [ROI 1], SpinalCord [ROI 5]" in m for m in case.messages)
    with pytest.raises(ProtocolError) as exc:
        review_dicom_case(case, protocol, "T8")
    text = str(exc.value)
    masks = case.case_input("T8").masks
    for number in (1, 5):
        volume = masks[f"SpinalCord [ROI {number}]"].volume_cc
        assert f"'SpinalCord' (ROI {number}, {volume:.2f} cc)" in text
        assert f"--role SpinalCord=ROI:{number}" in text
    assert masks["SpinalCord [ROI 1]"].volume_cc < 0.1 < masks["SpinalCord [ROI 5]"].volume_cc

    chosen = review_dicom_case(case, protocol, "T8", role_overrides={"SpinalCord": "ROI:5"})
    assert chosen.resolution.get("SpinalCord") == "SpinalCord [ROI 5]"
    # the same as the case with the real cord alone
    alone = write_case(tmp_path / "alone", replace={"SpinalCord": cord})
    reference = review_dicom_case(load_dicom_case(alone.folder, scene), protocol, "T8")
    rows = {(r.structure, r.metric): r.value for r in reference.rows}
    assert {(r.structure, r.metric): r.value for r in chosen.rows} == rows
    assert rows[("SpinalCord_PRV02", "D0.03cc")] is not None


@pytest.mark.mrml
@pytest.mark.parametrize("second", [" GTV ", "gtv"])
def test_gtv_and_a_folded_gtv_are_kept_apart_and_asked_about(tmp_path, scene, protocol, second):
    from SIBSpineSBRTLib.caseio.case_loader import load_dicom_case
    from SIBSpineSBRTLib.review.dicom_review import review_dicom_case

    small = fx.Roi(second, [circle_at(z, 3.0, -5.4, 2.0) for z in fixture_zs(8.0, 10.0)], (255, 0, 0), "GTV")
    case_files = write_case(tmp_path / "case", extra=[(2, small)])
    case = load_dicom_case(case_files.folder, scene)  # "already has a segment named gtv" no more
    names = ("GTV", second.strip())
    assert case.segment_names[1:3] == [f"{names[0]} [ROI 2]", f"{names[1]} [ROI 3]"]
    with pytest.raises(ProtocolError) as exc:
        review_dicom_case(case, protocol, "T8")
    assert "(ROI 2," in str(exc.value) and "(ROI 3," in str(exc.value)
    assert "--role GTV=ROI:2 or --role GTV=ROI:3" in str(exc.value)
    result = review_dicom_case(case, protocol, "T8", role_overrides={"GTV": "ROI:2"})
    assert result.resolution.get("GTV") == "GTV [ROI 2]"
    if second == "gtv":  # an exact name is a choice too when only one structure carries it
        result = review_dicom_case(case, protocol, "T8", role_overrides={"GTV": "gtv"})
        assert result.resolution.get("GTV") == "gtv [ROI 3]"


@pytest.mark.mrml
def test_seg_nrrd_with_two_segments_of_one_name_is_an_error(tmp_path, scene, protocol):
    from SIBSpineSBRTLib.caseio.case_loader import load_dicom_case
    from SIBSpineSBRTLib.frontends.cli import main
    from SIBSpineSBRTLib.geometry.masks import Mask
    from SIBSpineSBRTLib.mrml import segmentations as segs
    from SIBSpineSBRTLib.mrml import storage
    from SIBSpineSBRTLib.review.planning_volumes import plan_volumes

    case = load_dicom_case(fx.make_case(tmp_path / "case", with_mr=False, with_dose=False).folder, scene)
    masks = segs.read_segments(case.segmentation)
    g = case.ct_series.geometry
    decoy = np.zeros(g.shape, bool)
    decoy[12, 5:7, 5:7] = True
    node = segs.new_segmentation(scene.scene, "S", g)
    for name, mask in (("CTV", masks["CTV"]), ("SpinalCanal", masks["SpinalCanal"]), ("SpinalCord", masks["Cord"])):
        segs.add_source_segment(node, mask, name, (1, 1, 0))
    segs.add_source_segment(node, Mask(decoy, g, "SpinalCord"), "SpinalCord", (1, 1, 0), allow_same_name=True)
    path = storage.save_segmentation(scene.scene, node, tmp_path / "s.seg.nrrd")
    again = storage.load_segmentation(scene.scene, path)
    read = segs.read_segments(again)
    assert list(read) == ["CTV", "SpinalCanal", "SpinalCord [SpinalCord]", "SpinalCord [SpinalCord_1]"]
    assert read["SpinalCord [SpinalCord_1]"].voxel_count == 4  # the last no longer replaces the first
    with pytest.raises(ProtocolError) as exc:
        plan_volumes(protocol, read, "T8")
    assert "segment ID SpinalCord_1, " in str(exc.value) and "--role SpinalCord=ID:SpinalCord" in str(exc.value)
    with pytest.raises(segs.SegmentationError, match="2 segments named SpinalCord"):
        segs.read_segments(again, ["SpinalCord"])

    out = tmp_path / "v.seg.nrrd"
    assert main(["volumes", "--segmentation", str(path), "--level", "T8", "--out", str(out)]) == 2 and not out.exists()
    args = ["volumes", "--segmentation", str(path), "--level", "T8", "--out", str(out)]
    assert main([*args, "--role", "SpinalCord=ID:SpinalCord"]) == 0 and out.exists()
    prv = segs.read_segments(storage.load_segmentation(scene.scene, out))["SpinalCord_PRV02"]
    assert prv.volume_cc > masks["Cord"].volume_cc  # built from the real cord, not the 4-voxel decoy


@pytest.mark.mrml
def test_cli_refuses_role_for_a_derived_structure(tmp_path, capsys):
    from SIBSpineSBRTLib.frontends.cli import main

    folder = fx.make_case(tmp_path / "case", with_mr=False).folder
    code = main(["review", "--dicom", str(folder), "--level", "T8", "--out", str(tmp_path / "out"), "--role",
                 "PTV_Eval=NO_SUCH"])  # fmt: skip
    assert code == 2
    assert "PTV_Eval is built by SIBSpineSBRT from the CTV and the canal" in capsys.readouterr().err


@pytest.mark.mrml
def test_bow_tie_gtv_makes_the_gtv_rows_not_evaluable(tmp_path, scene, protocol):
    from SIBSpineSBRTLib.caseio.case_loader import load_dicom_case
    from SIBSpineSBRTLib.protocol.evaluate import NOT_EVALUABLE
    from SIBSpineSBRTLib.review.dicom_review import review_dicom_case

    zs = fixture_zs(6.0, 14.0)
    contours = [fx.circle(3.07, -5.41, 5.03, z) for z in zs]
    c = contours[2]
    contours[2] = np.vstack([c[:36], c[36:][::-1]])  # the second half reversed: the ring crosses itself
    case_files = write_case(tmp_path / "case", replace={"GTV": fx.Roi("GTV", contours, (255, 0, 0), "GTV")})
    case = load_dicom_case(case_files.folder, scene)
    assert "GTV" not in case.segment_names
    note = [m for m in case.messages if "ROI 'GTV' (ROI number 2) is left out of the case" in m]
    assert len(note) == 1 and f"DICOM z = {zs[2]:.2f} mm" in note[0] and "Redraw or repair" in note[0]
    result = review_dicom_case(case, protocol, "T8")
    gtv_rows = [r for r in result.rows if r.structure == "GTV"]
    assert gtv_rows and all(r.status == NOT_EVALUABLE for r in gtv_rows)
    assert result.verdict != "pass" and note[0] in result.messages


@pytest.mark.mrml
def test_bow_tie_in_the_thoracic_phantoms_gtv_stops_a_passing_review(tmp_path, capsys):
    """The thoracic phantom's passing plan, one GTV contour twisted into a bow-tie: the GTV is left out, named,
    and the review is incomplete (exit 2), never a pass on a GTV that is not the one drawn."""
    import pydicom

    from SIBSpineSBRTLib.caseio.dicom_write import export_case
    from SIBSpineSBRTLib.frontends.cli import main
    from SIBSpineSBRTLib.geometry.masks import Mask
    from SIBSpineSBRTLib.review.demo import build_teaching_case

    phantom = build_teaching_case("thoracic", "pass")
    g = phantom.ct_geometry
    files = export_case(tmp_path / "case", phantom, {n: Mask(m, g, n) for n, m in phantom.segments.items()})
    ds = pydicom.dcmread(str(files["rtstruct"]))
    number = [int(r.ROINumber) for r in ds.StructureSetROISequence if r.ROIName == "GTV"][0]
    gtv = [c for c in ds.ROIContourSequence if int(c.ReferencedROINumber) == number][0]
    item = gtv.ContourSequence[len(gtv.ContourSequence) // 2]
    points = np.asarray([float(v) for v in item.ContourData]).reshape(-1, 3)
    half = len(points) // 2
    item.ContourData = [f"{v:.4f}" for v in np.vstack([points[:half], points[half:][::-1]]).ravel()]
    fx.save(ds, files["rtstruct"])

    out = tmp_path / "out"
    code = main(["review", "--dicom", str(files["folder"]), "--out", str(out), "--no-report"])
    printed = capsys.readouterr()
    said = printed.out + printed.err
    assert code == 2
    assert f"ROI 'GTV' (ROI number {number}) is left out of the case" in said
    assert f"DICOM z = {points[0, 2]:.2f} mm crosses itself" in said and "Redraw or repair the contour" in said
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["verdict"] == "incomplete"
    assert {r["status"] for r in doc["rows"] if r["structure"] == "GTV"} == {"not_evaluable"}
    assert all(r["status"] != "not_evaluable" for r in doc["rows"] if r["structure"] != "GTV")


# -- the physicist's case: a decoy cord on the cervical phantom whose plan fails the cord PRV ------------------


def _add_first_roi(path, name, contour_lps):
    """Insert ROI ``name`` as ROI number 1 of the RTSTRUCT at ``path`` (the others renumbered +1)."""
    import pydicom
    from pydicom.dataset import Dataset

    ds = pydicom.dcmread(str(path))
    for item in ds.StructureSetROISequence:
        item.ROINumber = int(item.ROINumber) + 1
    for seq in (ds.ROIContourSequence, ds.RTROIObservationsSequence):
        for item in seq:
            item.ReferencedROINumber = int(item.ReferencedROINumber) + 1
    roi = Dataset()
    roi.ROINumber = 1
    roi.ReferencedFrameOfReferenceUID = ds.StructureSetROISequence[0].ReferencedFrameOfReferenceUID
    roi.ROIName = name
    roi.ROIGenerationAlgorithm = "MANUAL"
    ds.StructureSetROISequence.insert(0, roi)
    contour = Dataset()
    contour.ContourGeometricType = "CLOSED_PLANAR"
    contour.NumberOfContourPoints = len(contour_lps)
    contour.ContourData = [f"{v:.4f}" for v in np.asarray(contour_lps).ravel()]
    rc = Dataset()
    rc.ReferencedROINumber = 1
    rc.ROIDisplayColor = [255, 255, 0]
    rc.ContourSequence = pydicom.sequence.Sequence([contour])
    ds.ROIContourSequence.insert(0, rc)
    fx.save(ds, path)


@pytest.mark.mrml
def test_decoy_cord_cannot_turn_a_failing_cord_prv_into_a_pass(tmp_path, scene, protocol):
    from SIBSpineSBRTLib.caseio.case_loader import load_dicom_case
    from SIBSpineSBRTLib.caseio.dicom_write import export_case
    from SIBSpineSBRTLib.geometry.masks import Mask
    from SIBSpineSBRTLib.protocol.evaluate import FAIL
    from SIBSpineSBRTLib.review.demo import build_teaching_case
    from SIBSpineSBRTLib.review.dicom_review import review_dicom_case

    phantom = build_teaching_case("cervical", "fail")
    g = phantom.ct_geometry
    files = export_case(tmp_path / "case", phantom, {n: Mask(m, g, n) for n, m in phantom.segments.items()})
    # a 3 mm circle in a corner of a CT slice, far from the dose
    k = g.shape[0] // 2
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    ring_ijk = np.column_stack([8 + 1.5 / g.spacing[0] * np.cos(t), 8 + 1.5 / g.spacing[1] * np.sin(t), np.full(24, k)])
    _add_first_roi(files["rtstruct"], "SpinalCord", g.ijk_to_ras_points(ring_ijk) * [-1, -1, 1])

    case = load_dicom_case(files["folder"], scene)
    cords = [n for n in case.segment_names if n.startswith("SpinalCord [")]
    assert cords[0] == "SpinalCord [ROI 1]" and len(cords) == 2
    with pytest.raises(ProtocolError, match="2 structures could be the SpinalCord") as exc:
        review_dicom_case(case, protocol)
    real = cords[1].split("ROI ")[1].rstrip("]")
    assert f"--role SpinalCord=ROI:{real}" in str(exc.value)
    result = review_dicom_case(case, protocol, role_overrides={"SpinalCord": f"ROI:{real}"})
    prv = [r for r in result.rows if (r.structure, r.metric) == ("SpinalCord_PRV02", "D0.03cc")][0]
    assert prv.status == FAIL and prv.value > 25 and result.verdict == "fail"
