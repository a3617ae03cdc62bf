"""The Slicer panel's memory (review/session.py) with real MRML nodes: a stored review is only ever used for
the nodes it was made from, and nothing survives a scene close."""

from types import SimpleNamespace

import pytest

from SIBSpineSBRTLib.review.session import ReviewSession

pytestmark = pytest.mark.mrml


def nodes(scene):
    seg = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Structures")
    dose = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "Dose")
    ct = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    return seg, dose, ct


def test_review_is_used_only_for_its_own_nodes(scene):
    s = scene.scene
    seg, dose, ct = nodes(s)
    session = ReviewSession()
    result = object()
    session.remember(result, seg, dose)
    assert session.result_for(s, seg, dose) is result
    other = s.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "Dose 2")
    assert session.result_for(s, seg, other) is None  # a new dose: the review is not of it
    s.RemoveNode(dose)
    assert session.result_for(s, seg, dose) is None  # its dose left the scene


def test_scene_close_forgets_everything(scene):
    s = scene.scene
    seg, dose, ct = nodes(s)
    session = ReviewSession()
    session.load(SimpleNamespace(ct=ct))
    session.remember(object(), seg, dose)
    assert session.case_for(s, ct) is not None
    s.Clear(0)  # what File > Close scene does; the panel also calls forget() on StartCloseEvent
    assert session.result_for(s, seg, dose) is None and session.case_for(s, ct) is None
    session.forget()
    assert session.last_result is None and session.dicom_case is None


def test_a_new_case_drops_the_old_review(scene):
    s = scene.scene
    seg, dose, ct = nodes(s)
    session = ReviewSession()
    session.remember(object(), seg, dose)
    session.load(SimpleNamespace(ct=ct))
    assert session.result_for(s, seg, dose) is None
    assert session.case_for(s, ct).ct is ct and session.case_for(s, None) is None


def test_role_table_follows_segmentation_protocol_and_overrides(scene):
    """The panel rebuilds its role table when this key changes (not on the selector's signal, which may
    arrive before the parameter node holds the new segmentation)."""
    from SIBSpineSBRTLib.review.readiness import role_table_key

    s = scene.scene
    seg_a, _, _ = nodes(s)
    seg_b = s.AddNewNodeByClass("vtkMRMLSegmentationNode", "Other")
    seg_a.GetSegmentation().AddEmptySegment("GTV", "GTV")
    key = role_table_key(seg_a, "mitsuyoshi2025", {})
    assert key == role_table_key(seg_a, "mitsuyoshi2025", {})
    assert key != role_table_key(seg_b, "mitsuyoshi2025", {})  # another segmentation picked
    assert key != role_table_key(seg_a, "other.json", {})  # another protocol
    assert key != role_table_key(seg_a, "mitsuyoshi2025", {"GTV": "ROI:3"})
    seg_a.GetSegmentation().AddEmptySegment("CTV", "CTV")
    assert key != role_table_key(seg_a, "mitsuyoshi2025", {})  # a segment added
    assert role_table_key(None, "mitsuyoshi2025", {})[0] is None
