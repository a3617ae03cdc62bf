"""DICOM Spatial Registration (REG) objects: read a rigid one, write one.

A Spatial Registration (SOP class 1.2.840.10008.5.1.4.1.1.66.1) names a registered frame of reference (its
own FrameOfReferenceUID) and, in each RegistrationSequence item, a source frame with the matrix that maps
that frame's patient coordinates (LPS, mm) into the registered frame's: a 4x4 FrameOfReferenceTransformationMatrix,
row-major, applied as ``M @ [x, y, z, 1]``; several MatrixSequence items apply in order. Only RIGID matrices
are read (RIGID_SCALE and AFFINE are refused, as is a matrix that is not a rotation and translation);
a Deformable Spatial Registration (1.2.840.10008.5.1.4.1.1.66.3) is refused with a message.

``Registration.transform(source, target)`` composes the items both ways: a REG may state CT->MR, MR->CT or
each frame into a common one; the registered frame itself maps by identity. ``lps_to_ras`` converts a
transform to the RAS convention the rest of the library uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from .errors import CaseIOError

SPATIAL_REGISTRATION = "1.2.840.10008.5.1.4.1.1.66.1"
DEFORMABLE_SPATIAL_REGISTRATION = "1.2.840.10008.5.1.4.1.1.66.3"
REG_CLASSES = (SPATIAL_REGISTRATION, DEFORMABLE_SPATIAL_REGISTRATION)
_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])


class RegistrationError(CaseIOError):
    """A REG object that cannot be used as a rigid registration."""


def lps_to_ras(matrix) -> np.ndarray:
    """A 4x4 transform between LPS patient coordinates as the same transform between RAS ones (and back)."""
    return _FLIP @ np.asarray(matrix, float) @ _FLIP


ras_to_lps = lps_to_ras


@dataclass
class Registration:
    """A rigid REG: ``to_registered`` maps each source frame UID to its 4x4 LPS matrix into ``registered_frame``."""

    path: Optional[Path]
    registered_frame: str
    to_registered: Dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name if self.path is not None else "REG"

    @property
    def frames(self) -> set:
        return set(self.to_registered) | {self.registered_frame}

    def _into(self, frame: str) -> np.ndarray:
        if frame in self.to_registered:
            return self.to_registered[frame]
        if frame == self.registered_frame:
            return np.eye(4)
        raise KeyError(frame)

    def relates(self, source: str, target: str) -> bool:
        return bool(source) and bool(target) and source != target and {source, target} <= self.frames

    def transform(self, source: str, target: str) -> np.ndarray:
        """The 4x4 LPS matrix mapping ``source``-frame points to ``target``-frame points."""
        return np.linalg.inv(self._into(target)) @ self._into(source)


def _matrix(item, where: str) -> np.ndarray:
    kind = str(getattr(item, "FrameOfReferenceTransformationMatrixType", "") or "").upper()
    if kind != "RIGID":
        raise RegistrationError(
            f"{where}: the registration matrix is of type {kind or 'unstated'}; only RIGID registrations are read "
            "(export the rigid registration from the planning system)."
        )
    values = [float(v) for v in getattr(item, "FrameOfReferenceTransformationMatrix", None) or []]
    if len(values) != 16:
        raise RegistrationError(f"{where}: the registration matrix has {len(values)} values instead of 16.")
    m = np.array(values).reshape(4, 4)
    rotation = m[:3, :3]
    if (
        not np.allclose(m[3], [0, 0, 0, 1], atol=1e-6)
        or not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-4)
        or np.linalg.det(rotation) < 0
    ):
        raise RegistrationError(f"{where}: the matrix typed RIGID is not a rotation and translation.")
    return m


def _ds(value: float) -> str:
    """``value`` as a DICOM decimal string (16 characters at most), as precise as that allows."""
    for digits in range(16, 0, -1):
        text = f"{float(value):.{digits}g}"
        if len(text) <= 16:
            return text
    raise ValueError(f"{value} does not fit a decimal string")


def read_registration(path) -> Registration:
    """Read a rigid Spatial Registration file; ``RegistrationError`` for a deformable or non-rigid one."""
    import pydicom

    path = Path(path)
    ds = pydicom.dcmread(str(path))
    sop = str(getattr(ds, "SOPClassUID", "") or "")
    if sop == DEFORMABLE_SPATIAL_REGISTRATION:
        raise RegistrationError(
            f"{path}: a deformable registration (Deformable Spatial Registration) is not used: only a rigid "
            "registration places the MR on the CT here. Export the rigid registration, or register the MR."
        )
    if sop != SPATIAL_REGISTRATION:
        raise RegistrationError(f"{path}: not a Spatial Registration object (SOP class {sop or 'missing'}).")
    reg = Registration(path, str(getattr(ds, "FrameOfReferenceUID", "") or ""))
    for n, item in enumerate(getattr(ds, "RegistrationSequence", None) or [], start=1):
        frame = str(getattr(item, "FrameOfReferenceUID", "") or "")
        where = f"{path}: registration item {n}"
        if not frame:
            raise RegistrationError(f"{where} names no frame of reference.")
        total = np.eye(4)
        for reg_item in getattr(item, "MatrixRegistrationSequence", None) or []:
            for matrix_item in getattr(reg_item, "MatrixSequence", None) or []:
                total = _matrix(matrix_item, where) @ total
        reg.to_registered[frame] = total
    if not reg.registered_frame or not reg.to_registered:
        raise RegistrationError(f"{path}: the registration names no frames of reference to relate.")
    return reg


def write_registration(path, study, registered_frame: str, source_frame: str, source_to_registered_lps) -> Path:
    """A rigid REG mapping ``source_frame`` into ``registered_frame`` (4x4 LPS), the registered frame carried as an
    identity item, as planning systems write it. ``study`` is a ``dicom_write.Study``."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as Seq
    from pydicom.uid import generate_uid

    from ._pydicom_compat import write_file
    from .dicom_write import _base

    m = np.asarray(source_to_registered_lps, float)
    ds = _base(study, SPATIAL_REGISTRATION, "REG", generate_uid(), 80, "MR to CT registration")
    ds.FrameOfReferenceUID = registered_frame
    ds.PositionReferenceIndicator = ""
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = study.date, "120000"
    ds.ContentLabel = "MR_TO_CT"
    ds.ContentDescription = "Rigid registration of the MR frame to the planning CT frame"
    ds.ContentCreatorName = ""
    items = []
    for frame, matrix in ((registered_frame, np.eye(4)), (source_frame, m)):
        mat = Dataset()
        mat.FrameOfReferenceTransformationMatrix = [_ds(v) for v in matrix.ravel()]
        mat.FrameOfReferenceTransformationMatrixType = "RIGID"
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "125025", "DCM", "Visual Alignment"
        reg_item = Dataset()
        reg_item.MatrixSequence = Seq([mat])
        reg_item.RegistrationTypeCodeSequence = Seq([code])
        item = Dataset()
        item.FrameOfReferenceUID = frame
        item.MatrixRegistrationSequence = Seq([reg_item])
        items.append(item)
    ds.RegistrationSequence = Seq(items)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(ds, str(path))
    return path
