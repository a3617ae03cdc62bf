"""The decisions behind the Slicer-only paths (a DICOM case loaded by Slicer and SlicerRT, SlicerRT's DVH as a
cross-check), tested without Slicer: with real MRML from slicer-core where nodes are involved, with plain
Python stubs for the engine and the DICOM database otherwise. Never a fake ``slicer`` module.

Nodes are built the way Slicer's scalar-volume plugin and SlicerRT's DICOM-RT import build them
(``DICOMPlugin.addSeriesInSubjectHierarchy``; SlicerRT ``LoadRtDose`` and ``LoadRtStructureSet``).
slicer-core has no "Planar contour" representation (SlicerRT registers it and its converters), so the
emulated RTSTRUCT segmentation keeps SlicerRT's source representation name with the products of the contours
beside it: the closed surface (SlicerRT's display, made by its planar contour -> closed surface rule) and the
binary labelmap (what ``CreateBinaryLabelmapRepresentation`` makes on the CT grid). SlicerRT's DVH rebuilds
each labelmap from the source (``ComputeDvh``); ``slicerrt_dvh_labelmap`` does the same here from the
contours' surface, with slicer-core's real closed surface -> binary labelmap rule.
"""

import dicom_fixtures as fx
import numpy as np
import pytest

from SIBSpineSBRTLib.caseio import slicer_case as sc
from SIBSpineSBRTLib.mrml.slicerrt_dvh import (
    column_unit,
    crosscheck_result,
    dose_in_gy,
    metrics_from_row,
    structure_segment_ids,
)
from SIBSpineSBRTLib.protocol import evaluate as ev
from SIBSpineSBRTLib.protocol.crosscheck import crosscheck_rows
from SIBSpineSBRTLib.protocol.roles import RoleResolution, StructureInfo
from SIBSpineSBRTLib.review.pipeline import ReviewResult

TABLE1 = {
    ("PTV_Eval", "D2%"): 46.0,
    ("PTV_Eval", "D90%"): 30.0,
    ("PTV_Eval", "D98%"): 27.5,
    ("GTV", "D2%"): 47.0,
    ("GTV", "D50%"): 43.0,
    ("GTV", "D90%"): 37.0,
    ("GTV", "D98%"): 30.0,
    ("SpinalCord_PRV02", "D0.03cc"): 24.9,
    ("ThecalSac", "D0.03cc"): 20.0,
}


def review_result(protocol, problems=()):
    """A review of the Table-1 values (no DVHs needed), GTV and the cord PRV read from segments."""
    rows = ev.evaluate(protocol, lambda c: TABLE1.get((c.structure, c.metric)), lambda s: False)
    resolution = RoleResolution(
        {"GTV": "GTV [ROI 2]", "ThecalSac": "Sac", "SpinalCord": "Cord"},
        ["GTV [ROI 2]", "Sac", "Cord"],
        structures={"GTV [ROI 2]": StructureInfo("GTV [ROI 2]", "GTV", 2, "Segment_7")},
    )
    volumes = {"PTV_Eval": None, "SpinalCord_PRV02": None}
    return ReviewResult(
        "t", "T8", protocol, resolution, volumes, {}, {}, rows, ev.verdict(rows, list(problems)),
        problems=list(problems),
    )  # fmt: skip


IDS = {"GTV": "Segment_7", "ThecalSac": "Sac", "PTV_Eval": "PTV_Eval", "SpinalCord_PRV02": "SpinalCord_PRV02"}


def agreeing_engine(calls):
    def compute(segment_ids, metrics):
        calls.append((dict(segment_ids), list(metrics)))
        return {key: value + 0.05 for key, value in TABLE1.items() if key[0] in segment_ids}

    return compute


def same_judgement(a, b):
    return [(r.structure, r.metric, r.value, r.status) for r in a] == [
        (r.structure, r.metric, r.value, r.status) for r in b
    ]


# -- the cross-check fails safe (plain Python, a stub engine) ---------------------------------------------


def test_crosscheck_runs_the_engine_on_each_structure_once(protocol):
    calls = []
    result = crosscheck_result(review_result(protocol), IDS, agreeing_engine(calls))
    assert calls == [(IDS, ["D2%", "D90%", "D98%", "D50%", "D0.03cc"])]
    checked = [r for r in result.rows if r.crosscheck is not None]
    assert len(checked) == 9 and not any(r.crosscheck.flagged for r in checked)
    assert result.verdict == ev.PASS and not any("skipped" in m for m in result.messages)


def test_crosscheck_engine_error_keeps_our_rows(protocol):
    result = review_result(protocol)

    def failing(segment_ids, metrics):
        raise RuntimeError("SlicerRT DVH: Dose volume and the structure do not overlap")

    checked = crosscheck_result(result, IDS, failing)
    assert same_judgement(checked.rows, result.rows) and all(r.crosscheck is None for r in checked.rows)
    assert checked.verdict == result.verdict == ev.PASS
    assert (
        "SlicerRT cross-check skipped: SlicerRT DVH: Dose volume and the structure do not overlap" in checked.messages
    )


def test_crosscheck_empty_selection_never_reaches_the_engine(protocol):
    """SlicerRT takes an empty selection for every segment (ComputeDvh .cxx L208-214): never call it with one."""
    calls = []
    result = review_result(protocol)
    for ids in ({}, {s: "" for s in IDS}):
        checked = crosscheck_result(result, ids, agreeing_engine(calls))
        assert same_judgement(checked.rows, result.rows) and all(r.crosscheck is None for r in checked.rows)
        assert any(m.startswith("SlicerRT cross-check skipped: ") for m in checked.messages)
    assert calls == []


def test_crosscheck_empty_segment_id_is_left_out(protocol):
    """An ID "" would be dereferenced as a null segment inside SlicerRT (a crash): that structure is skipped."""
    calls = []
    result = review_result(protocol)
    checked = crosscheck_result(result, dict(IDS, GTV=""), agreeing_engine(calls))
    assert len(calls) == 1 and "GTV" not in calls[0][0] and "" not in calls[0][0].values()
    gtv = [r for r in checked.rows if r.structure == "GTV"]
    assert all(r.crosscheck is None and "SlicerRT cross-check skipped: no segment." in r.message for r in gtv)
    assert same_judgement(gtv, [r for r in result.rows if r.structure == "GTV"])
    assert all(r.crosscheck is not None for r in checked.rows if r.structure in ("PTV_Eval", "ThecalSac"))
    assert "SlicerRT cross-check skipped for GTV: no such segment in the reviewed segmentation." in checked.messages


def test_crosscheck_keeps_the_review_problems_in_its_verdict(protocol):
    """The verdict after the cross-check is the review's rule: a review-level problem still stops a pass."""
    problem = "The plan's fractionation (3 fractions) is not the protocol's (5)."
    result = review_result(protocol, [problem])
    assert result.verdict == ev.INCOMPLETE
    assert crosscheck_result(result, IDS, agreeing_engine([])).verdict == ev.INCOMPLETE
    # a flagged, worse SlicerRT value still decides its row and the verdict
    worse = crosscheck_result(review_result(protocol), IDS, lambda ids, m: {("SpinalCord_PRV02", "D0.03cc"): 26.0})
    assert worse.verdict == ev.FAIL


def test_crosscheck_engine_without_a_value_for_a_structure(protocol):
    rows = review_result(protocol).rows
    out, notes = crosscheck_rows(
        rows, IDS, lambda ids, m: {("GTV", "D2%"): float("nan"), ("ThecalSac", "D0.03cc"): 20.0}
    )
    assert all(r.crosscheck is None for r in out if r.structure == "GTV")
    assert any("skipped for PTV_Eval, GTV, SpinalCord_PRV02: SlicerRT gave no value" in n for n in notes)


def test_structure_segment_ids_by_recorded_id_then_by_name(protocol):
    names = {"Sac": "Segment_3", "PTV_Eval": "Segment_20"}
    ids = structure_segment_ids(review_result(protocol), lambda name: names.get(name, ""))
    assert ids == {
        "GTV": "Segment_7",  # two segments named GTV: the one read, by its ID
        "ThecalSac": "Segment_3",
        "SpinalCord": "",  # no such name: left out by the cross-check, never passed to SlicerRT
        "PTV_Eval": "Segment_20",
        "SpinalCord_PRV02": "",
    }


# -- SlicerRT's values in the unit of their column ----------------------------------------------------------


def test_slicerrt_values_converted_from_the_unit_in_their_column():
    names = ["Show", "Structure", "Volume name", "Volume (cc)", "Mean dose (CGY)", "Min dose (CGY)", "Max dose (CGY)"]
    names += ["D0.03cc (CGY)", "D2% (CGY)", "D98% (CGY)"]
    cells = ["1", "GTV", "Dose", "3.2", "4210", "2800", "4690.5", "4650", "4600", "3100"]
    stats = {"Dmean": 4, "Dmin": 5, "Dmax": 6}
    values = metrics_from_row(names, lambda c: cells[c], ["D2%", "D0.03cc", "Dmean", "Dmax"], stats)
    assert values == pytest.approx({"D2%": 46.0, "D0.03cc": 46.5, "Dmean": 42.1, "Dmax": 46.905})
    gy = [n.replace("CGY", "GY") for n in names]
    assert metrics_from_row(gy, lambda c: cells[c], ["D98%"], stats) == pytest.approx({"D98%": 3100.0})
    assert (
        column_unit("Mean dose (GY)") == "GY" and column_unit("D2% ()") == "" and column_unit("Mean intensity") is None
    )
    assert dose_in_gy("4500", "cGy") == pytest.approx(45.0)
    for unit in ("", None, "%", "RELATIVE"):  # no dose unit on the study: SlicerRT writes "D2% ()"
        with pytest.raises(ValueError, match="not a dose unit"):
            dose_in_gy("45", unit)


# -- which files go to which plugin ------------------------------------------------------------------------


class FakeDatabase:
    """``ctkDICOMDatabase``'s two look-ups, with file names as the database keeps them."""

    def __init__(self, scan):
        self.scan = scan

    def filesForSeries(self, uid):
        return [f"/db/{f.path.name}" for f in self.scan.series[uid].files]

    def fileForInstance(self, uid):
        return f"/db/{uid}.dcm"


@pytest.fixture(scope="module")
def multi_dose_case(tmp_path_factory):
    """The synthetic case with a second, per-beam RTDOSE in the plan dose's series (some planning systems)."""
    import pydicom

    case = fx.make_case(tmp_path_factory.mktemp("multidose") / "case")
    beam = case.folder / "export" / "rt" / "dose_beam1"
    dose = np.zeros((case.dose_grid.slices, case.dose_grid.rows, case.dose_grid.cols))
    fx.write_rtdose(beam, case.dose_grid, dose, case.ct.study_uid, case.ct.frame_uid, summation="BEAM")
    ds = pydicom.dcmread(beam)
    ds.SeriesInstanceUID = pydicom.dcmread(case.dose_path).SeriesInstanceUID
    fx.save(ds, beam)
    return case


def test_load_requests_load_the_chosen_rtdose_file_itself(multi_dose_case):
    import pydicom

    selection = sc.choose_case_objects(multi_dose_case.folder)
    plan_dose = pydicom.dcmread(multi_dose_case.dose_path)
    assert selection.dose_file.sop_instance_uid == plan_dose.SOPInstanceUID
    assert sum(f.series_uid == plan_dose.SeriesInstanceUID for f in selection.scan.rtdoses) == 2
    db = FakeDatabase(selection.scan)
    requests = sc.load_requests(selection, db.filesForSeries, db.fileForInstance)
    assert [r.role for r in requests] == ["CT", "MR", "MR", "RTSTRUCT", "RTDOSE", "RTPLAN"]
    ct = requests[0]
    assert ct.plugin == "DICOMScalarVolumePlugin" and len(ct.files) == multi_dose_case.ct.grid.slices
    assert ct.files == tuple(db.filesForSeries(selection.ct_series.series_uid))
    dose = requests[4]
    assert dose.plugin == "DicomRtImportExportPlugin" and dose.files == (f"/db/{plan_dose.SOPInstanceUID}.dcm",)
    # a database that does not know the file: the scanned path
    fallback = sc.load_requests(selection, db.filesForSeries, lambda uid: "")
    assert fallback[4].files == (str(multi_dose_case.dose_path),)


def test_unusable_dose_is_recorded_as_outside_slicer(tmp_path):
    folder = fx.make_case(tmp_path / "c", with_mr=False, dose_units=None).folder
    selection = sc.choose_case_objects(folder)
    assert selection.rtdose is None and "DoseUnits" in selection.dose_problem
    assert selection.dose_problem in selection.messages
    assert [r.role for r in sc.load_requests(selection, lambda uid: [], lambda uid: "")] == ["CT", "RTSTRUCT", "RTPLAN"]
    with pytest.raises(ValueError, match="DoseUnits"):
        sc.choose_case_objects(folder, on_dose_error="raise")


def test_sample_data_registers_each_phantom_once():
    from types import SimpleNamespace

    from SIBSpineSBRTLib.phantoms.sample_data import SAMPLES, samples_to_register

    assert samples_to_register([]) == SAMPLES
    first = [SimpleNamespace(sampleName=s.name) for s in SAMPLES[:3]]
    assert samples_to_register(first) == SAMPLES[3:]


# -- slicer-core: a case as Slicer and SlicerRT load it ------------------------------------------------------


def _sh(scene):
    import slicer

    return slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)


def slicer_volume(scene, study, series, name):
    """A volume as DICOMScalarVolumePlugin loads it: ``DICOM.instanceUIDs`` on the node, the series item's
    UIDs and frame of reference (DICOMPlugin.addSeriesInSubjectHierarchy)."""
    import slicer

    from SIBSpineSBRTLib.mrml.volumes import add_volume

    c = slicer.vtkMRMLSubjectHierarchyConstants
    node = add_volume(scene, series.array, series.geometry, name)
    node.SetAttribute("DICOM.instanceUIDs", " ".join(series.slice_sop_uids))
    sh = _sh(scene)
    item = sh.CreateItem(study, node)
    sh.SetItemUID(item, c.GetDICOMUIDName(), series.series_uid)
    sh.SetItemUID(item, c.GetDICOMInstanceUIDName(), " ".join(series.slice_sop_uids))
    sh.SetItemAttribute(item, c.GetDICOMFrameOfReferenceUIDAttributeName(), series.frame_of_reference_uid)
    return node


def slicerrt_dose(scene, study, rtdose):
    """A dose as SlicerRT's LoadRtDose makes it: float values after Dose Grid Scaling, ``DicomRtImport.DoseVolume``
    on the node, the unit name and scaling on the study item; a colour table node is added with it."""

    from SIBSpineSBRTLib.mrml.volumes import add_volume

    node = add_volume(scene, rtdose.values.astype("float32"), rtdose.geometry, "70: RTDOSE")
    node.SetAttribute("DicomRtImport.DoseVolume", "1")
    sh = _sh(scene)
    item = sh.CreateItem(study, node)
    sh.SetItemUID(item, "DICOM", rtdose.series_uid)
    sh.SetItemAttribute(study, "DicomRtImport.DoseUnitName", rtdose.units)
    sh.SetItemAttribute(study, "DicomRtImport.DoseUnitValue", str(rtdose.scaling))
    table = scene.AddNewNodeByClass("vtkMRMLColorTableNode", "Dose_ColorTable")
    return [node, table]


def slicerrt_segmentation(scene, structure_set, ct_geometry):
    """A segmentation as SlicerRT's RTSTRUCT import leaves it once displayed and given labelmaps: source
    representation "Planar contour", each segment with the closed surface and the binary labelmap made from its
    contours (see the module doc) and SlicerRT's ROI-number tag."""
    import slicer
    import vtk

    from SIBSpineSBRTLib.caseio.rtstruct_read import roi_keys, structure_set_masks
    from SIBSpineSBRTLib.mrml import segmentations as segs

    masks = structure_set_masks(structure_set, ct_geometry)
    scratch = segs.new_segmentation(scene, "scratch", ct_geometry)
    node = slicer.vtkMRMLSegmentationNode()
    node.SetName("3: RTSTRUCT")
    scene.AddNode(node)
    node.CreateDefaultDisplayNodes()
    segmentation = node.GetSegmentation()
    segmentation.SetSourceRepresentationName(sc.PLANAR_CONTOUR)
    for key, roi in zip(roi_keys(structure_set.rois), structure_set.rois):
        sid = segs.add_source_segment(scratch, masks[key], roi.name, (0.5, 0.5, 0.5), allow_same_name=True)
        scratch.CreateClosedSurfaceRepresentation()
        made = scratch.GetSegmentation().GetSegment(sid)
        segment = slicer.vtkSegment()
        segment.SetName(roi.name)
        for name in ("Binary labelmap", "Closed surface"):
            data = made.GetRepresentation(name).NewInstance()
            data.DeepCopy(made.GetRepresentation(name))
            segment.AddRepresentation(name, data)
        segment.AddRepresentation(sc.PLANAR_CONTOUR, vtk.vtkPolyData())  # AddSegment wants the source...
        assert segmentation.AddSegment(segment, segmentation.GenerateUniqueSegmentID(roi.name))
        segment.RemoveRepresentation(sc.PLANAR_CONTOUR)  # ...which slicer-core could not make empty for new segments
        segment.SetTag(sc.SLICERRT_ROI_NUMBER_TAG, str(roi.number))
        scratch.GetSegmentation().RemoveSegment(sid)
    scene.RemoveNode(scratch)
    return node


def slicerrt_dvh_labelmap(segmentation_node, segment_id, reference):
    """The labelmap SlicerRT's DVH takes for a segment (``ComputeDvh``, DoseVolumeHistogram .cxx L225-277):
    rebuilt from the source representation on the dose grid (``CreateRepresentation(binary labelmap,
    alwaysConvert=true)``); when the source is the labelmap no conversion is found and the labelmap is resampled.
    Returns the voxel values on ``reference`` (geometry of the dose)."""
    import slicer
    from vtkmodules.util import numpy_support as nps

    from SIBSpineSBRTLib.mrml.segmentations import oriented_image

    reference_image = oriented_image(np.zeros(reference.shape, np.uint8), reference)
    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetSourceRepresentationName() == "Binary labelmap":
        labelmap = slicer.vtkOrientedImageData()
        slicer.vtkSlicerSegmentationsModuleLogic.GetSegmentBinaryLabelmapRepresentation(
            segmentation_node, segment_id, labelmap
        )
        out = slicer.vtkOrientedImageData()
        slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
            labelmap, reference_image, out, False, True
        )
        values = nps.vtk_to_numpy(out.GetPointData().GetScalars())
        return values == segmentation.GetSegment(segment_id).GetLabelValue()
    # planar contour -> closed surface (SlicerRT's rule: the segment's closed surface) -> labelmap (slicer-core)
    assert segmentation.GetSourceRepresentationName() == sc.PLANAR_CONTOUR
    copy = slicer.vtkSegmentation()
    copy.SetSourceRepresentationName("Closed surface")
    segment = slicer.vtkSegment()
    surface = segmentation.GetSegment(segment_id).GetRepresentation("Closed surface")
    contour_surface = surface.NewInstance()
    contour_surface.DeepCopy(surface)
    segment.AddRepresentation("Closed surface", contour_surface)
    copy.AddSegment(segment, "s")
    copy.SetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName(),
        slicer.vtkSegmentationConverter.SerializeImageGeometry(reference_image),
    )
    copy.SetConversionParameter(
        slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule.GetOversamplingFactorParameterName(), "1"
    )
    copy.CreateRepresentation("Binary labelmap", True)
    labelmap = copy.GetSegment("s").GetRepresentation("Binary labelmap")
    if labelmap is None or labelmap.GetPointData().GetScalars() is None:
        return np.zeros(reference.shape, bool).ravel()
    out = slicer.vtkOrientedImageData()
    slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
        labelmap, reference_image, out, False, True
    )
    return nps.vtk_to_numpy(out.GetPointData().GetScalars()) > 0


@pytest.fixture
def slicer_loaded(scene, tmp_path):
    """A case folder loaded as Slicer + SlicerRT load it: (selection, [(request, nodes added by it)])."""
    from SIBSpineSBRTLib.caseio.dicom_image import read_image_series

    folder = fx.make_case(tmp_path / "case").folder
    selection = sc.choose_case_objects(folder)
    db = FakeDatabase(selection.scan)
    requests = sc.load_requests(selection, db.filesForSeries, db.fileForInstance)
    s = scene.scene
    sh = _sh(s)
    study = sh.CreateStudyItem(sh.CreateSubjectItem(sh.GetSceneItemID(), "Patient"), "Study")
    mrs = iter(selection.mr_files)
    loaded = []
    for request in requests:
        if request.role == "CT":
            made = [slicer_volume(s, study, selection.ct_series, "2: Planning CT")]
        elif request.role == "MR":
            made = [slicer_volume(s, study, read_image_series(next(mrs), selection.scan), "MR")]
        elif request.role == "RTSTRUCT":
            made = [slicerrt_segmentation(s, selection.structure_set, selection.ct_series.geometry)]
        elif request.role == "RTDOSE":
            made = slicerrt_dose(s, study, selection.rtdose)
        else:  # the plan's nodes (SlicerRT's plan and beams) are not used
            made = []
        loaded.append((request, made))
    return selection, loaded


@pytest.mark.mrml
def test_derived_segments_of_a_slicerrt_structure_set_reach_slicerrt_dvh(scene, slicer_loaded, protocol):
    """Defect 1: PTV, PTV_Eval and the cord PRV written into SlicerRT's RTSTRUCT segmentation must be what
    SlicerRT's DVH sees. With the planar-contour source kept (the code before the fix) their contours are empty
    and SlicerRT rebuilds empty labelmaps ("Dose volume and the structure do not overlap")."""
    from SIBSpineSBRTLib.mrml.case import store_review
    from SIBSpineSBRTLib.mrml.volumes import volume_geometry
    from SIBSpineSBRTLib.review.dicom_review import review_dicom_case

    selection, loaded = slicer_loaded
    case = sc.case_from_loaded_nodes(scene.scene, selection, loaded)
    seg = case.segmentation
    result = review_dicom_case(case, protocol, "T8")
    written = store_review(scene.scene, seg, result)
    dose_geometry = volume_geometry(case.dose)
    for name in ("PTV", "PTV_Eval", "SpinalCord_PRV02"):
        seen = slicerrt_dvh_labelmap(seg, written[name], dose_geometry)
        expected = result.volumes[name].mask.array.sum() * result.volumes[name].mask.geometry.voxel_volume_cc
        got = seen.sum() * dose_geometry.voxel_volume_cc
        assert got == pytest.approx(expected, rel=0.15), name  # nearest neighbour onto the 2x2x4 mm dose grid
    # saved with the scene too: only the source representation is written (vtkMRMLSegmentationStorageNode)
    assert seg.GetSegmentation().GetSourceRepresentationName() == "Binary labelmap"
    # source segments are there too, and keep their ROI numbers (two ROIs of one name stay apart)
    sid = seg.GetSegmentation().GetSegmentIdBySegmentName("GTV")
    assert slicerrt_dvh_labelmap(seg, sid, dose_geometry).sum() > 0
    from SIBSpineSBRTLib.mrml.segmentations import segment_tag

    assert segment_tag(seg, sid, "SIBSpineSBRT.ROINumber") == segment_tag(seg, sid, sc.SLICERRT_ROI_NUMBER_TAG) != ""


@pytest.mark.mrml
def test_slicer_loaded_case_has_frames_for_mr_fusion(scene, slicer_loaded, protocol):
    from SIBSpineSBRTLib.caseio.case_loader import FRAME_ATTRIBUTE, SERIES_UID_ATTRIBUTE
    from SIBSpineSBRTLib.review.dicom_review import mr_for_fusion

    selection, loaded = slicer_loaded
    case = sc.case_from_loaded_nodes(scene.scene, selection, loaded)
    ct_frame = selection.ct_series.frame_of_reference_uid
    assert case.ct.GetAttribute(FRAME_ATTRIBUTE) == ct_frame
    assert case.ct.GetAttribute(SERIES_UID_ATTRIBUTE) == selection.ct_series.series_uid
    assert len(case.mr) == 2
    mr, mr_to_ct = mr_for_fusion(case)
    assert mr is case.mr[[m.GetAttribute(FRAME_ATTRIBUTE) for m in case.mr].index(ct_frame)]
    assert np.array_equal(mr_to_ct, np.eye(4))
    assert any("another frame of reference" in m for m in case.messages)
    assert case.dose.GetAttribute("DicomRtImport.DoseVolume") == "1" and case.dose.IsA("vtkMRMLScalarVolumeNode")
    assert case.dose.GetAttribute(FRAME_ATTRIBUTE) == ct_frame
    # reviews like the case loaded outside Slicer
    data = case.case_input("T8")
    assert data.dose is not None and "GTV" in data.masks


@pytest.mark.mrml
def test_a_request_that_loaded_nothing_is_named(scene, slicer_loaded):
    selection, loaded = slicer_loaded
    broken = [(r, [] if r.role == "RTDOSE" else nodes) for r, nodes in loaded]
    with pytest.raises(ValueError, match="0 dose volumes"):
        sc.case_from_loaded_nodes(scene.scene, selection, broken)
