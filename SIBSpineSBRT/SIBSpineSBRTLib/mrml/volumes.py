"""Scalar volumes (CT, MR, dose) to and from arrays with geometry; dose markers and units as SlicerRT sets them."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..dose.grid import DOSE_UNITS_TO_GY, DoseError, DoseGrid
from ..geometry.grid import ImageGeometry

#: SlicerRT's markers (vtkSlicerRtCommon): a node attribute, and unit attributes on the study item.
DOSE_VOLUME_ATTRIBUTE = "DicomRtImport.DoseVolume"
DOSE_UNIT_NAME_ATTRIBUTE = "DicomRtImport.DoseUnitName"
DOSE_UNIT_VALUE_ATTRIBUTE = "DicomRtImport.DoseUnitValue"


def vtk_matrix4(m: np.ndarray):
    """A ``vtkMatrix4x4`` holding the 4x4 array ``m``."""
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    out = vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            out.SetElement(r, c, float(m[r, c]))
    return out


def numpy_matrix4(vtk_matrix) -> np.ndarray:
    """The 4x4 array of a ``vtkMatrix4x4``."""
    return np.array([[vtk_matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def vtk_image_from_array(array: np.ndarray):
    """A ``vtkImageData`` holding a deep copy of a ``[k, j, i]`` array (no geometry)."""
    from vtkmodules.util import numpy_support as nps
    from vtkmodules.vtkCommonDataModel import vtkImageData

    arr = np.ascontiguousarray(array)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    img = vtkImageData()
    img.SetDimensions(arr.shape[2], arr.shape[1], arr.shape[0])
    img.GetPointData().SetScalars(nps.numpy_to_vtk(arr.ravel(), deep=True))
    return img


def add_volume(scene, array: np.ndarray, geometry: ImageGeometry, name: str, labelmap: bool = False):
    """Add a new scalar (or labelmap) volume node holding a copy of ``array`` on ``geometry``."""
    import slicer

    if tuple(array.shape) != geometry.shape:
        raise ValueError(f"Volume {name}: array shape {array.shape} does not match grid {geometry.shape}.")
    node = slicer.vtkMRMLLabelMapVolumeNode() if labelmap else slicer.vtkMRMLScalarVolumeNode()
    node.SetName(name)
    scene.AddNode(node)
    set_volume_geometry(node, geometry)
    node.SetAndObserveImageData(vtk_image_from_array(array))
    node.CreateDefaultDisplayNodes()
    return node


def set_volume_geometry(node, geometry: ImageGeometry) -> None:
    node.SetIJKToRASMatrix(vtk_matrix4(geometry.ijk_to_ras))


def transform_problem(node, what: str) -> Optional[str]:
    """Why ``node`` cannot be read in its own coordinates (None when it can): it is under a parent transform
    that is not the identity. The review reads nodes' own geometry, so such a node would be misplaced."""
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    parent = node.GetParentTransformNode()
    if parent is None:
        return None
    if parent.IsTransformToWorldLinear():
        m = vtkMatrix4x4()
        parent.GetMatrixTransformToWorld(m)
        if np.allclose(numpy_matrix4(m), np.eye(4), atol=1e-9):
            return None
    return (
        f"The {what} {node.GetName()} is under the transform {parent.GetName()}, which this review does not apply. "
        "Harden the transform (Data module: right-click the node > Harden transform) or remove it, then try again."
    )


def volume_geometry(node) -> ImageGeometry:
    """Geometry of a volume node in its own coordinates (parent transforms are not applied; the readers of
    the review refuse a transformed node, see ``transform_problem``)."""
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    img = node.GetImageData()
    if img is None:
        raise ValueError(f"Volume {node.GetName()} has no image data.")
    m = vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    ni, nj, nk = img.GetDimensions()
    return ImageGeometry.from_ijk_to_ras(numpy_matrix4(m), (nk, nj, ni))


def volume_array(node) -> np.ndarray:
    """A copy of the voxel values as a ``[k, j, i]`` array (first component)."""
    from vtkmodules.util import numpy_support as nps

    img = node.GetImageData()
    if img is None or img.GetPointData().GetScalars() is None:
        raise ValueError(f"Volume {node.GetName()} has no voxel values.")
    ni, nj, nk = img.GetDimensions()
    scalars = nps.vtk_to_numpy(img.GetPointData().GetScalars())
    if scalars.ndim > 1:
        scalars = scalars[:, 0]
    return np.array(scalars.reshape(nk, nj, ni), copy=True)


def _study_item(scene, node, create: bool):
    import slicer

    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    if sh is None:
        return None, None
    item = sh.GetItemByDataNode(node)
    if not item and create:
        item = sh.CreateItem(sh.GetSceneItemID(), node)
    study_level = slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMLevelStudy()
    study = sh.GetItemAncestorAtLevel(item, study_level) if item else 0
    if not study and create:
        patient = sh.CreateSubjectItem(sh.GetSceneItemID(), "Patient")
        study = sh.CreateStudyItem(patient, "Study")
        sh.SetItemParent(item, study)
    return sh, study


def mark_as_dose(scene, node, unit: str = "GY") -> None:
    """Mark a volume as a dose with units, as SlicerRT's DICOM-RT import does, so SlicerRT's DVH and
    Isodose modules accept it: node attribute ``DicomRtImport.DoseVolume`` and the unit on its study."""
    key = str(unit).strip().upper()
    if key not in DOSE_UNITS_TO_GY:
        raise DoseError(f"Dose {node.GetName()}: unit '{unit}' is not a physical dose unit (GY or CGY).")
    node.SetAttribute(DOSE_VOLUME_ATTRIBUTE, "1")
    sh, study = _study_item(scene, node, create=True)
    sh.SetItemAttribute(study, DOSE_UNIT_NAME_ATTRIBUTE, key)
    sh.SetItemAttribute(study, DOSE_UNIT_VALUE_ATTRIBUTE, "1.0")


def dose_unit(scene, node) -> Optional[str]:
    """The dose unit SlicerRT would read for this volume, or None when it has none."""
    import slicer

    sh, _ = _study_item(scene, node, create=False)
    if sh is None:
        return None
    item = sh.GetItemByDataNode(node)
    if not item:
        return None
    unit = sh.GetAttributeFromItemAncestor(
        item, DOSE_UNIT_NAME_ATTRIBUTE, slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMLevelStudy()
    )
    return unit or None


def dose_grid_from_node(scene, node, unit: Optional[str] = None) -> DoseGrid:
    """Read a dose volume as a DoseGrid in Gy. The unit comes from ``unit`` or from the SlicerRT study
    attribute; a dose with neither is refused with a message saying how to set it."""
    if unit is None and node.GetAttribute(DOSE_VOLUME_ATTRIBUTE) != "1":
        # the study's unit also reaches the CT and MR of the same study: only a marked dose may use it
        raise DoseError(
            f"Volume {node.GetName()} is not marked as a dose volume ({DOSE_VOLUME_ATTRIBUTE}); choose the plan's "
            "RTDOSE, or state the unit of this volume's values (e.g. --dose-unit Gy on the command line)."
        )
    problem = transform_problem(node, "dose volume")
    if problem:
        raise DoseError(problem)
    unit = unit or dose_unit(scene, node)
    if unit is None:
        raise DoseError(
            f"Dose volume {node.GetName()} has no dose unit. Load it through DICOM-RT (RTDOSE DoseUnits), or "
            "state the unit (e.g. --dose-unit Gy on the command line)."
        )
    return DoseGrid.from_array(volume_array(node), volume_geometry(node), unit, node.GetName())
