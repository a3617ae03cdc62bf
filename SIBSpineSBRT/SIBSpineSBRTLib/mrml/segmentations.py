"""Segmentation nodes to and from Masks: read source segments on a chosen grid, write derived ones.

Source segments are never modified. Derived segments carry the tag ``SIBSpineSBRT.Derived`` so that a
later run may replace them, and never a segment the user drew.

Segments are read under a key unique in the segmentation (``segment_keys``): the segment's name, or, when
another segment's name is the same after trimming and case-folding, ``Name [ROI 7]`` (a segment loaded from
an RTSTRUCT, tagged with its ROI number) or ``Name [Segment_3]`` (its segment ID). Two segments are never
one structure: which of them plays a protocol role is ``protocol.roles``' question, and never a guess.
"""

from __future__ import annotations

import os
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..geometry.grid import ImageGeometry
from ..geometry.masks import Mask
from ..protocol.roles import StructureInfo, StructureMasks, structure_keys
from ..warnings import GeometryWarning
from .volumes import numpy_matrix4, transform_problem, vtk_image_from_array, vtk_matrix4

REFERENCE_GEOMETRY_PARAMETER = "Reference image geometry"
DERIVED_TAG = "SIBSpineSBRT.Derived"
RECIPE_TAG = "SIBSpineSBRT.Recipe"
ROI_NUMBER_TAG = "SIBSpineSBRT.ROINumber"  # set on segments loaded from an RTSTRUCT (``caseio.case_loader``)


class SegmentationError(ValueError):
    """A segmentation that cannot be used as it is (no such segment, no geometry, name clash...)."""


def oriented_image(array: np.ndarray, geometry: ImageGeometry):
    """A ``vtkOrientedImageData`` (Slicer's labelmap type) holding ``array`` on ``geometry``."""
    import slicer

    img = slicer.vtkOrientedImageData()
    img.ShallowCopy(vtk_image_from_array(array))
    img.SetImageToWorldMatrix(vtk_matrix4(geometry.ijk_to_ras))
    return img


def geometry_from_oriented_image(img) -> ImageGeometry:
    """Geometry of a ``vtkOrientedImageData``, whose extent need not start at 0."""
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    m = vtkMatrix4x4()
    img.GetImageToWorldMatrix(m)
    e = img.GetExtent()
    shape = (e[5] - e[4] + 1, e[3] - e[2] + 1, e[1] - e[0] + 1)
    m4 = numpy_matrix4(m)
    m4[:3, 3] = m4[:3, :3] @ np.array([e[0], e[2], e[4]], float) + m4[:3, 3]
    return ImageGeometry.from_ijk_to_ras(m4, shape)


def new_segmentation(scene, name: str, reference: ImageGeometry):
    """Add an empty segmentation node whose reference geometry (the grid segments are exported on) is
    ``reference``, typically the planning CT."""
    import slicer

    node = slicer.vtkMRMLSegmentationNode()
    node.SetName(name)
    scene.AddNode(node)
    node.CreateDefaultDisplayNodes()
    set_reference_geometry(node, reference)
    return node


def set_reference_geometry(node, reference: ImageGeometry) -> None:
    import slicer

    empty = oriented_image(np.zeros(reference.shape, np.uint8), reference)
    node.GetSegmentation().SetConversionParameter(
        REFERENCE_GEOMETRY_PARAMETER, slicer.vtkSegmentationConverter.SerializeImageGeometry(empty)
    )


def reference_geometry(node) -> ImageGeometry:
    """The segmentation's reference geometry: the grid its segments are analysed and derived on.

    A segmentation without Slicer's "Reference image geometry" conversion parameter (as slicerio and many
    pipelines write a .seg.nrrd) is read on its own labelmap grid: the grid of the file it was read from (its
    NRRD header's space directions, space origin and sizes), or, for a node not read from a file, the union of
    its segments' labelmaps (Slicer's ``vtkSegmentation::DetermineCommonLabelmapGeometry``). A
    ``GeometryWarning`` says so (``own_grid_note``). A segmentation with neither is refused."""
    import slicer

    text = node.GetSegmentation().GetConversionParameter(REFERENCE_GEOMETRY_PARAMETER)
    if not text:
        geometry = own_labelmap_geometry(node)
        if geometry is None:
            from .storage import source_file

            where = source_file(node) or f"Segmentation {node.GetName()}"
            raise SegmentationError(
                f"{where} has no reference geometry and no segment labelmap to take a grid from. Set it from the "
                "planning CT (Segmentations module: Specify geometry), or pass the CT so its grid is used (--ct on "
                "the command line)."
            )
        warnings.warn(GeometryWarning(own_grid_note(node, geometry)), stacklevel=2)
        return geometry
    img = slicer.vtkOrientedImageData()
    slicer.vtkSegmentationConverter.DeserializeImageGeometry(text, img, False)
    return geometry_from_oriented_image(img)


def has_reference_geometry(node) -> bool:
    return bool(node.GetSegmentation().GetConversionParameter(REFERENCE_GEOMETRY_PARAMETER))


def own_grid_note(node, geometry: ImageGeometry) -> str:
    from .storage import source_file

    where = source_file(node) or f"Segmentation {node.GetName()}"
    return (
        f"{where}: no reference geometry: the segments are read on the file's own grid ({geometry.describe()}). "
        "Give the planning CT (--ct) to read them on its grid instead."
    )


def own_labelmap_geometry(node) -> Optional[ImageGeometry]:
    """The segmentation's own labelmap grid (see ``reference_geometry``), or None when it has none."""
    import slicer

    from .storage import nrrd_grid, source_file

    seg = node.GetSegmentation()
    union = seg.DetermineCommonLabelmapGeometry(seg.EXTENT_UNION_OF_SEGMENTS, None) if seg.GetNumberOfSegments() else ""
    if not union:
        return None
    img = slicer.vtkOrientedImageData()
    slicer.vtkSegmentationConverter.DeserializeImageGeometry(union, img, False)
    e = img.GetExtent()
    if any(e[2 * a + 1] < e[2 * a] for a in range(3)):
        return None
    segments = geometry_from_oriented_image(img)
    path = source_file(node)
    grid = nrrd_grid(path) if path and os.path.isfile(path) else None
    if grid is not None and _contains(grid, segments):
        return grid  # the file's whole grid: planning volumes may grow beyond the segments' union
    return segments


def _contains(grid: ImageGeometry, inner: ImageGeometry, tol: float = 1e-3) -> bool:
    """``inner`` is a block of ``grid``'s voxels (same spacing and axes, whole-voxel offset, inside it)."""
    if not (
        np.allclose(grid.spacing, inner.spacing, atol=tol)
        and np.allclose(grid.direction_matrix, inner.direction_matrix, atol=1e-6)
    ):
        return False
    first = np.linalg.inv(grid.ijk_to_ras) @ np.append(np.asarray(inner.origin, float), 1.0)
    ijk = first[:3]
    if not np.allclose(ijk, np.round(ijk), atol=tol):
        return False
    start = np.round(ijk).astype(int)  # i, j, k
    size = np.array(inner.shape[::-1])
    return bool(np.all(start >= 0) and np.all(start + size <= np.array(grid.shape[::-1])))


def segment_names(node) -> List[Tuple[str, str]]:
    """(segment ID, segment name) of every segment, in order."""
    seg = node.GetSegmentation()
    ids = [seg.GetNthSegmentID(n) for n in range(seg.GetNumberOfSegments())]
    return [(sid, seg.GetSegment(sid).GetName()) for sid in ids]


def segment_tag(node, segment_id: str, tag: str) -> Optional[str]:
    from vtkmodules.vtkCommonCore import reference

    value = reference("")
    segment = node.GetSegmentation().GetSegment(segment_id)
    if segment is None or not segment.GetTag(tag, value):
        return None
    return str(value)


def segment_mask(node, segment_id: str, geometry: Optional[ImageGeometry] = None) -> Mask:
    """The segment as a Mask on ``geometry`` (default: the segmentation's reference geometry),
    resampled by nearest neighbour when the grids differ. A segmentation under a parent transform is refused
    (the transform is not applied)."""
    import slicer

    segment = node.GetSegmentation().GetSegment(segment_id)
    if segment is None:
        raise SegmentationError(f"Segmentation {node.GetName()} has no segment with ID {segment_id}.")
    problem = transform_problem(node, "segmentation")
    if problem:
        raise SegmentationError(problem)
    name = segment.GetName()
    geometry = geometry or reference_geometry(node)
    source = node.GetSegmentation().GetSourceRepresentationName()
    if source != slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName():
        if not node.GetSegmentation().ContainsRepresentation(
            slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
        ):
            raise SegmentationError(
                f"Segment {name} is stored as '{source}' and has no binary labelmap yet; create the binary "
                "labelmap representation first (Segmentations module: Representations)."
            )
    labelmap = slicer.vtkOrientedImageData()
    if not slicer.vtkSlicerSegmentationsModuleLogic.GetSegmentBinaryLabelmapRepresentation(node, segment_id, labelmap):
        raise SegmentationError(f"Segment {name} of {node.GetName()} could not be read as a binary labelmap.")
    if labelmap.GetPointData().GetScalars() is None or labelmap.IsEmpty():
        return Mask(np.zeros(geometry.shape, bool), geometry, name)
    reference = oriented_image(np.zeros(geometry.shape, np.uint8), geometry)
    resampled = slicer.vtkOrientedImageData()
    if not slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
        labelmap, reference, resampled, False, True
    ):
        raise SegmentationError(f"Segment {name} could not be resampled onto {geometry.describe()}.")
    from vtkmodules.util import numpy_support as nps

    got = geometry_from_oriented_image(resampled)
    values = nps.vtk_to_numpy(resampled.GetPointData().GetScalars()).reshape(got.shape)
    if got.shape != geometry.shape:
        raise SegmentationError(f"Segment {name}: resampling gave grid {got.shape}, expected {geometry.shape}.")
    # Segments may share one labelmap layer, each with its own label value.
    return Mask(values == segment.GetLabelValue(), geometry, name)


def segment_infos(node) -> Dict[str, StructureInfo]:
    """key -> StructureInfo (name, segment ID, ROI number when tagged) of every segment, in order; see the module
    doc for the keys."""
    entries = []
    for sid, name in segment_names(node):
        tag = segment_tag(node, sid, ROI_NUMBER_TAG)
        try:
            roi = int(tag) if tag else None
        except ValueError:
            roi = None
        entries.append((name, roi, sid))
    keys = structure_keys(entries)
    return {key: StructureInfo(key, name, roi, sid) for key, (name, roi, sid) in zip(keys, entries)}


def segment_keys(node) -> List[Tuple[str, str]]:
    """(segment ID, key) of every segment, in order."""
    return [(info.segment_id, key) for key, info in segment_infos(node).items()]


def read_segments(
    node, names: Optional[Sequence[str]] = None, geometry: Optional[ImageGeometry] = None
) -> StructureMasks:
    """Masks of the segments, keyed by ``segment_keys`` (all segments when ``names`` is None), with each key's
    ``StructureInfo`` in ``.info``. ``names`` may hold keys or names; a name several segments carry is refused
    (``SegmentationError`` naming their keys), and so is a name no segment has."""
    infos = segment_infos(node)
    if names is None:
        wanted = {key: key for key in infos}
    else:
        wanted = {}
        for asked in names:
            hits = [asked] if asked in infos else [k for k, i in infos.items() if i.name == asked]
            if len(hits) > 1:
                raise SegmentationError(
                    f"Segmentation {node.GetName()} has {len(hits)} segments named {asked} "
                    f"({', '.join(hits)}); ask for one by its key."
                )
            if not hits:
                raise SegmentationError(
                    f"Segmentation {node.GetName()} has no segment {asked} (segments: {', '.join(infos)})."
                )
            wanted[asked] = hits[0]
    out = StructureMasks(info={asked: infos[key] for asked, key in wanted.items()})
    if geometry is None and wanted:
        geometry = reference_geometry(node)  # once: it may warn that the file's own grid is used
    for asked, key in wanted.items():
        out[asked] = segment_mask(node, infos[key].segment_id, geometry)
    return out


def write_derived_segment(node, mask: Mask, name: str, color: Sequence[float], recipe: str = "") -> str:
    """Write ``mask`` as the derived segment ``name``: a new segment, or the replacement of a segment this
    library derived before. A user's own segment of the same name is never overwritten."""
    import slicer

    seg = node.GetSegmentation()
    sid = seg.GetSegmentIdBySegmentName(name)
    if sid:
        if segment_tag(node, sid, DERIVED_TAG) != "1":
            raise SegmentationError(
                f"Segmentation {node.GetName()} already has a segment named {name} that this software did not "
                f"derive; it is left untouched. Rename it (e.g. {name}_TPS) to let the derived {name} be written."
            )
    else:
        sid = seg.AddEmptySegment(name, name, [float(c) for c in color])
    segment = seg.GetSegment(sid)
    segment.SetColor(*[float(c) for c in color])
    segment.SetTag(DERIVED_TAG, "1")
    if recipe:
        if any(ch in recipe for ch in "|:"):
            raise ValueError("Recipe text must not contain '|' or ':' (segment tag separators in .seg.nrrd).")
        segment.SetTag(RECIPE_TAG, recipe)
    image = oriented_image(mask.array.astype(np.uint8), mask.geometry)
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    if not logic.SetBinaryLabelmapToSegment(image, node, sid, logic.MODE_REPLACE):
        raise SegmentationError(f"Could not write derived segment {name} into {node.GetName()}.")
    return sid


def add_source_segment(node, mask: Mask, name: str, color: Sequence[float], allow_same_name: bool = False) -> str:
    """Add a new (non-derived) segment, e.g. when building a case from arrays or files; returns its ID (the name,
    or the name made unique by Slicer). A segment of exactly this name is an error unless ``allow_same_name``
    (an RTSTRUCT with two ROIs of one name: both are kept, and told apart by ``segment_keys``)."""
    import slicer

    seg = node.GetSegmentation()
    if not allow_same_name and any(n == name for _, n in segment_names(node)):
        raise SegmentationError(f"Segmentation {node.GetName()} already has a segment named {name}.")
    sid = seg.AddEmptySegment(seg.GenerateUniqueSegmentID(name), name, [float(c) for c in color])
    image = oriented_image(mask.array.astype(np.uint8), mask.geometry)
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    if not logic.SetBinaryLabelmapToSegment(image, node, sid, logic.MODE_REPLACE):
        raise SegmentationError(f"Could not write segment {name} into {node.GetName()}.")
    return sid
