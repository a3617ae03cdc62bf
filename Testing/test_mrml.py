"""Real MRML nodes from slicer-core: geometry through storage nodes, segments, derived segments, dose units."""

import numpy as np
import pytest

from SIBSpineSBRTLib.dose.grid import DoseError
from SIBSpineSBRTLib.geometry.grid import ImageGeometry
from SIBSpineSBRTLib.geometry.masks import Mask

pytestmark = pytest.mark.mrml

GEOMETRIES = {
    "identity": ImageGeometry((12, 14, 16), (1.5, -2.0, 3.0), (0.98, 0.98, 1.25)),
    "lps_like": ImageGeometry(
        (12, 14, 16), (40.0, 30.0, -20.0), (0.98, 0.98, 1.25), ((-1, 0, 0), (0, -1, 0), (0, 0, 1))
    ),
    "oblique": ImageGeometry(
        (12, 14, 16),
        (4.0, 5.0, 6.0),
        (1.1, 0.9, 2.0),
        tuple(map(tuple, np.array([[np.cos(0.3), -np.sin(0.3), 0], [np.sin(0.3), np.cos(0.3), 0], [0, 0, 1]]))),
    ),
}


def blob(shape, seed, fill=0.5):
    rng = np.random.default_rng(seed)
    a = np.zeros(shape, bool)
    a[3:9, 4:10, 5:12] = rng.random((6, 6, 7)) < fill
    return a


@pytest.mark.parametrize("name", GEOMETRIES)
def test_volume_nrrd_round_trip_keeps_geometry_and_values(scene, tmp_path, name):
    from SIBSpineSBRTLib.mrml import storage
    from SIBSpineSBRTLib.mrml.volumes import add_volume, volume_array, volume_geometry

    g = GEOMETRIES[name]
    values = np.random.default_rng(1).normal(0, 300, g.shape).astype(np.int16)
    node = add_volume(scene.scene, values, g, "CT")
    assert volume_geometry(node).same_grid(g, 1e-6)
    path = storage.save_volume(scene.scene, node, tmp_path / "ct.nrrd")
    again = storage.load_volume(scene.scene, path)
    back = volume_geometry(again)
    assert back.same_grid(g, 1e-4)
    assert np.allclose(back.spacing, g.spacing) and np.allclose(back.origin, g.origin, atol=1e-4)
    assert np.allclose(back.direction_matrix, g.direction_matrix, atol=1e-6)
    assert np.array_equal(volume_array(again), values)


@pytest.mark.parametrize("name", GEOMETRIES)
def test_segmentation_round_trip_with_shared_layers(scene, tmp_path, name):
    from SIBSpineSBRTLib.mrml import segmentations as segs
    from SIBSpineSBRTLib.mrml import storage

    g = GEOMETRIES[name]
    a, b, c = blob(g.shape, 1), blob(g.shape, 2), blob(g.shape, 3)
    b &= ~a  # disjoint segments end up sharing one labelmap layer with different label values
    node = segs.new_segmentation(scene.scene, "S", g)
    for n, arr in (("GTV", a), ("Cord", b), ("Canal", c)):
        segs.add_source_segment(node, Mask(arr, g, n), n, (1, 0, 0))
    assert node.GetSegmentation().GetNumberOfLayers() < 3  # the case we want to exercise
    path = storage.save_segmentation(scene.scene, node, tmp_path / "s.seg.nrrd")
    again = storage.load_segmentation(scene.scene, path)
    assert segs.reference_geometry(again).same_grid(g, 1e-4)
    masks = segs.read_segments(again)
    for n, arr in (("GTV", a), ("Cord", b), ("Canal", c)):
        assert np.array_equal(masks[n].array, arr), n


def test_segment_read_on_another_grid(scene):
    from SIBSpineSBRTLib.mrml import segmentations as segs

    g = GEOMETRIES["identity"]
    a = blob(g.shape, 4, fill=1.0)
    node = segs.new_segmentation(scene.scene, "S", g)
    sid = segs.add_source_segment(node, Mask(a, g, "A"), "A", (1, 1, 0))
    # a grid shifted by whole voxels: the same voxels, moved in index space
    shifted = g.crop((-2, -1, -3), (g.shape[0] + 2, g.shape[1] + 1, g.shape[2] + 3))
    m = segs.segment_mask(node, sid, shifted)
    assert np.array_equal(m.array[2:-2, 1:-1, 3:-3], a)
    assert m.voxel_count == a.sum()


def test_derived_segments_never_change_sources_and_keep_recipes(scene, tmp_path):
    from SIBSpineSBRTLib.mrml import segmentations as segs
    from SIBSpineSBRTLib.mrml import storage

    g = GEOMETRIES["lps_like"]
    gtv, ctv = blob(g.shape, 5), blob(g.shape, 6, fill=0.9)
    node = segs.new_segmentation(scene.scene, "S", g)
    segs.add_source_segment(node, Mask(gtv, g, "GTV"), "GTV", (1, 0, 0))
    segs.add_source_segment(node, Mask(ctv, g, "CTV"), "CTV", (0, 1, 0))
    ptv = np.zeros(g.shape, bool)
    ptv[2:11, 3:12, 4:14] = True  # overlaps both sources
    recipe = "PTV = CTV + 2 mm axial, 5 mm SI (exact margin); level T8"
    sid = segs.write_derived_segment(node, Mask(ptv, g, "PTV"), "PTV", (1, 0.5, 0), recipe)
    segs.write_derived_segment(node, Mask(ptv, g, "PTV"), "PTV", (1, 0.5, 0), recipe)  # replace, not duplicate
    assert [n for _, n in segs.segment_names(node)] == ["GTV", "CTV", "PTV"]
    masks = segs.read_segments(node)
    assert np.array_equal(masks["GTV"].array, gtv) and np.array_equal(masks["CTV"].array, ctv)
    assert np.array_equal(masks["PTV"].array, ptv)
    again = storage.load_segmentation(
        scene.scene, storage.save_segmentation(scene.scene, node, tmp_path / "d.seg.nrrd")
    )
    sid2 = again.GetSegmentation().GetSegmentIdBySegmentName("PTV")
    assert segs.segment_tag(again, sid2, segs.RECIPE_TAG) == recipe
    assert segs.segment_tag(again, sid2, segs.DERIVED_TAG) == "1"
    assert sid2 == sid


def test_users_own_segment_is_never_overwritten(scene):
    from SIBSpineSBRTLib.mrml import segmentations as segs

    g = GEOMETRIES["identity"]
    node = segs.new_segmentation(scene.scene, "S", g)
    mine = blob(g.shape, 7)
    segs.add_source_segment(node, Mask(mine, g, "PTV"), "PTV", (1, 0, 0))
    with pytest.raises(segs.SegmentationError, match="did not derive"):
        segs.write_derived_segment(node, Mask(~mine, g, "PTV"), "PTV", (1, 0, 0))
    assert np.array_equal(segs.read_segments(node)["PTV"].array, mine)


def test_segmentation_without_reference_geometry_is_named(scene):
    import slicer

    from SIBSpineSBRTLib.mrml import segmentations as segs

    node = slicer.vtkMRMLSegmentationNode()
    node.SetName("Bare")
    scene.scene.AddNode(node)
    with pytest.raises(segs.SegmentationError, match="Bare has no reference geometry"):
        segs.reference_geometry(node)


def test_dose_units(scene):
    import slicer

    from SIBSpineSBRTLib.mrml.volumes import (
        DOSE_VOLUME_ATTRIBUTE,
        add_volume,
        dose_grid_from_node,
        dose_unit,
        mark_as_dose,
    )

    g = GEOMETRIES["identity"]
    node = add_volume(scene.scene, np.full(g.shape, 3000.0, np.float32), g, "Dose")
    with pytest.raises(DoseError, match="not marked as a dose volume"):
        dose_grid_from_node(scene.scene, node)
    ct = add_volume(scene.scene, np.zeros(g.shape, np.int16), g, "CT")
    mark_as_dose(scene.scene, node, "cGy")
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene.scene)
    sh.SetItemParent(sh.CreateItem(sh.GetSceneItemID(), ct), sh.GetItemParent(sh.GetItemByDataNode(node)))
    with pytest.raises(DoseError, match="CT is not marked as a dose volume"):  # same study, so it "has" GY
        dose_grid_from_node(scene.scene, ct)
    assert node.GetAttribute(DOSE_VOLUME_ATTRIBUTE) == "1" and dose_unit(scene.scene, node) == "CGY"
    assert dose_grid_from_node(scene.scene, node).max_gy == pytest.approx(30.0)
    with pytest.raises(DoseError, match="not a physical dose unit"):
        mark_as_dose(scene.scene, node, "HU")


def test_nan_dose_is_refused(scene):
    from SIBSpineSBRTLib.mrml.volumes import add_volume, dose_grid_from_node

    g = GEOMETRIES["identity"]
    arr = np.full(g.shape, 20.0, np.float32)
    arr[1, 2, 3] = np.nan
    node = add_volume(scene.scene, arr, g, "Dose")
    with pytest.raises(DoseError, match="NaN"):
        dose_grid_from_node(scene.scene, node, "Gy")


def test_wrong_files_are_named(scene, tmp_path):
    from SIBSpineSBRTLib.mrml import storage

    bad = tmp_path / "notes.seg.nrrd"
    bad.write_text("not a segmentation")
    with pytest.raises(storage.StorageError, match="notes.seg.nrrd"):
        storage.load_segmentation(scene.scene, bad)
    with pytest.raises(storage.StorageError, match="does not exist"):
        storage.load_volume(scene.scene, tmp_path / "missing.nrrd")
    before = scene.scene.GetNumberOfNodes()
    (tmp_path / "reg.h5").write_text("not a transform")
    with pytest.raises(storage.StorageError, match=r"reg\.h5 is not a readable linear transform file"):
        storage.load_transform(scene.scene, tmp_path / "reg.h5")
    with pytest.raises(storage.StorageError, match="Transform file .* does not exist"):
        storage.load_transform(scene.scene, tmp_path / "none.tfm")
    assert scene.scene.GetNumberOfNodes() == before  # a failed read leaves nothing behind


def test_nodes_under_a_transform_are_refused_not_misplaced(scene):
    """The review reads nodes' own geometry: a dose or segmentation moved by a parent transform would be read
    in the wrong place, so it is refused with the fix; an identity transform changes nothing."""
    import slicer

    from SIBSpineSBRTLib.mrml.case import case_input_from_nodes
    from SIBSpineSBRTLib.mrml.segmentations import SegmentationError, add_source_segment, new_segmentation
    from SIBSpineSBRTLib.mrml.volumes import add_volume, dose_grid_from_node, mark_as_dose, vtk_matrix4

    g = GEOMETRIES["oblique"]
    dose = add_volume(scene.scene, np.full(g.shape, 20.0, np.float32), g, "Dose")
    mark_as_dose(scene.scene, dose, "GY")
    seg = new_segmentation(scene.scene, "Structures", g)
    add_source_segment(seg, Mask(blob(g.shape, 3), g), "GTV", (1, 0, 0))
    shift = slicer.vtkMRMLLinearTransformNode()
    shift.SetName("Couch shift")
    scene.scene.AddNode(shift)
    m = np.eye(4)
    m[:3, 3] = (0.0, 0.0, 7.5)
    shift.SetMatrixTransformToParent(vtk_matrix4(m))
    before = case_input_from_nodes(scene.scene, seg, dose, "T8")

    dose.SetAndObserveTransformNodeID(shift.GetID())
    with pytest.raises(DoseError, match="Dose is under the transform Couch shift.*Harden transform"):
        dose_grid_from_node(scene.scene, dose)
    moved = case_input_from_nodes(scene.scene, seg, dose, "T8")  # the dose rows become not evaluable
    assert moved.dose is None and "Couch shift" in moved.dose_problem
    seg.SetAndObserveTransformNodeID(shift.GetID())
    with pytest.raises(SegmentationError, match="segmentation Structures is under the transform Couch shift"):
        case_input_from_nodes(scene.scene, seg, None, "T8")

    shift.SetMatrixTransformToParent(vtk_matrix4(np.eye(4)))  # identity: read as before
    same = case_input_from_nodes(scene.scene, seg, dose, "T8")
    assert np.array_equal(same.masks["GTV"].array, before.masks["GTV"].array)
    assert np.array_equal(same.dose.array, before.dose.array)
    assert np.array_equal(dose_grid_from_node(scene.scene, dose).array, before.dose.array)  # the input unchanged


# -- the results table -------------------------------------------------------------------------------------------


def test_results_table_keeps_the_review_facts_through_a_saved_scene(scene, tmp_path, protocol, demo_case):
    """The advisory flag per row, the deviations (NON-PROTOCOL), the problems, the advisory verdict and what was
    not contoured or evaluated survive a saved and reopened scene, and the panel shows them as the report does."""
    from SIBSpineSBRTLib.dose.grid import DoseGrid
    from SIBSpineSBRTLib.mrml.results import (
        RESULTS_TABLE_NAME,
        read_results_table,
        results_panel,
        results_verdict,
        write_results_table,
    )
    from SIBSpineSBRTLib.mrml.scene import new_scene
    from SIBSpineSBRTLib.mrml.storage import load_scene_mrb, save_scene_mrb
    from SIBSpineSBRTLib.report import content
    from SIBSpineSBRTLib.review.pipeline import CaseInput, review_case

    c = demo_case
    masks = {n: Mask(m, c.ct_geometry, n) for n, m in c.segments.items()}
    masks["Couch"] = masks["GTV"].renamed("Couch")
    dose = DoseGrid(c.dose_gy, c.dose_geometry)
    result = review_case(CaseInput(c.name, c.level, masks, dose, plan_fractions=3), protocol, prv_margin_mm=0.0)
    assert result.deviations and result.problems and result.advisory_rows and result.not_contoured
    write_results_table(scene.scene, result)
    save_scene_mrb(scene.scene, tmp_path / "r.mrb")
    ctx = new_scene()
    try:
        load_scene_mrb(ctx, tmp_path / "r.mrb")
        node = ctx.scene.GetFirstNodeByName(RESULTS_TABLE_NAME)
        rows = read_results_table(node)
        stored = results_verdict(node)
        panel = results_panel(node)
    finally:
        ctx.scene.Clear(1)
    assert [(r["structure"], r["metric"], r["status"], r["advisory"], r["value_text"]) for r in rows] == [
        (r.structure, r.metric, r.status, r.advisory, r.value_text) for r in result.rows
    ]
    assert [r["value"] for r in rows] == pytest.approx([r.value for r in result.rows], abs=1e-3)  # as saved
    assert stored.verdict == result.verdict and stored.advisory_verdict == result.advisory_verdict
    assert stored.non_protocol and stored.deviations == result.deviations and stored.problems == result.problems
    assert stored.not_contoured == result.not_contoured and stored.not_evaluated == ["Couch"]
    # the panel: the verdict over the protocol rows, the banner, the problems, the two sections apart
    assert panel.verdict_text == content.verdict_text(result, flag=True)  # [NON-PROTOCOL REVIEW] in it
    assert "NON-PROTOCOL REVIEW" in panel.verdict_text
    assert panel.non_protocol_text.startswith("NON-PROTOCOL REVIEW") and result.deviations[0] in panel.non_protocol_text
    assert result.problems[0] in panel.problems_text and result.problems[0] not in panel.messages_text
    assert [r.cells[:3] for r in panel.protocol_rows] == [
        (r.structure, r.metric, r.value_text) for r in result.protocol_rows
    ]
    assert [r.cells[:3] for r in panel.advisory_rows] == [
        (r.structure, r.metric, r.value_text) for r in result.advisory_rows
    ]
    prv = next(r for r in panel.protocol_rows if r.cells[:2] == ("SpinalCord_PRV02", "D0.03cc"))
    assert prv.cells[panel.columns.index("Status")] == "MET"
    assert all(r.cells[-1] == o.constraint.source for r, o in zip(panel.advisory_rows, result.advisory_rows))
    assert (
        panel.advisory_text.startswith(content.ADVISORY_HEADING) and "never decide the verdict" in panel.advisory_text
    )
    assert content.advisory_verdict_text(result) in panel.advisory_summary
    assert content.not_contoured_text(result) in panel.advisory_summary
    assert "Couch" in panel.not_evaluated_text
