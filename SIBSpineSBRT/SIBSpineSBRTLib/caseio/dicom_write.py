"""A whole case out as DICOM: planning CT and MR series, RTSTRUCT, RTDOSE and RTPLAN, as a planning system
exports them, so that SlicerRT, other planning tools and our own reader can load it.

Geometry goes from RAS (``ImageGeometry``) to DICOM's LPS: x and y change sign. Slices are written along
the grid's k axis; pixel rows follow j and columns follow i. CT values are stored as signed 16-bit HU
(slope 1, intercept 0); MR as unsigned 16-bit; the dose as unsigned 32-bit with DoseGridScaling chosen
so the maximum dose uses the full range (rounding error below 1e-8 of the maximum). The MR keeps its own
frame of reference unless told it is registered. Patient identity is the caller's (a phantom's made-up
one by default); nothing else identifies a person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..geometry.grid import ImageGeometry
from ._pydicom_compat import write_file

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
RT_DOSE = "1.2.840.10008.5.1.4.1.1.481.2"
RT_PLAN = "1.2.840.10008.5.1.4.1.1.481.5"
IMPLEMENTATION_UID = "1.2.826.0.1.3680043.10.1234.1"  # under the pydicom/MedicalConnections root, for our writer


@dataclass
class Study:
    """Identity shared by every object of one exported case (made-up for phantoms)."""

    patient_name: str = "SIBSpine^Phantom"
    patient_id: str = "PHANTOM"
    study_uid: str = ""
    frame_uid: str = ""
    date: str = "20250101"
    description: str = "SIBSpineSBRT synthetic case"
    uids: Dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from pydicom.uid import generate_uid

        self.study_uid = self.study_uid or generate_uid()
        self.frame_uid = self.frame_uid or generate_uid()


def _lps(v) -> List[float]:
    v = np.asarray(v, float)
    return [float(-v[0]), float(-v[1]), float(v[2])]


def _base(study: Study, sop_class: str, modality: str, series_uid: str, number: int, description: str):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study.study_uid
    ds.StudyDate = ds.SeriesDate = study.date
    ds.StudyTime = ds.SeriesTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = study.description
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = number
    ds.SeriesDescription = description
    ds.Manufacturer = "SIBSpineSBRT"
    ds.SpecificCharacterSet = "ISO_IR 100"
    return ds


def _orientation(geometry: ImageGeometry):
    d = geometry.direction_matrix
    row, col, normal = _lps(d[:, 0]), _lps(d[:, 1]), _lps(d[:, 2])
    return row + col, np.asarray(normal)


def write_image_series(
    folder,
    array: np.ndarray,
    geometry: ImageGeometry,
    study: Study,
    modality: str = "CT",
    number: int = 1,
    description: str = "",
    frame_uid: Optional[str] = None,
) -> List[Path]:
    """One file per slice (k) of ``array`` ([k, j, i]) in ``folder``; CT in HU, MR as unsigned values."""
    from pydicom.uid import generate_uid

    if tuple(array.shape) != geometry.shape:
        raise ValueError(f"Series {description}: array shape {array.shape} is not the grid's {geometry.shape}.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    iop, _ = _orientation(geometry)
    series_uid = generate_uid()
    sop = CT_IMAGE if modality == "CT" else MR_IMAGE
    if modality == "CT":
        values = np.clip(np.round(array), -32768, 32767).astype("<i2")
    else:
        values = np.clip(np.round(array), 0, 65535).astype("<u2")
    paths = []
    for k in range(geometry.shape[0]):
        ds = _base(study, sop, modality, series_uid, number, description)
        ds.FrameOfReferenceUID = frame_uid or study.frame_uid
        ds.PositionReferenceIndicator = ""
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = _lps(geometry.ijk_to_ras_points([[0, 0, k]])[0])
        ds.ImageOrientationPatient = iop
        ds.PixelSpacing = [float(geometry.spacing[1]), float(geometry.spacing[0])]  # row spacing (j), column (i)
        ds.SliceThickness = float(geometry.spacing[2])
        ds.Rows, ds.Columns = geometry.shape[1], geometry.shape[2]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1 if modality == "CT" else 0
        if modality == "CT":
            ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "HU"
            ds.KVP = 120
        else:
            ds.MagneticFieldStrength = 1.5
            ds.ScanningSequence, ds.SequenceVariant = "SE", "NONE"
        ds.PixelData = values[k].tobytes()
        path = folder / f"{modality}{number:02d}_{k + 1:04d}.dcm"
        write_file(ds, str(path))
        paths.append(path)
    return paths


def write_rtplan(
    path, study: Study, structure_set_uid: str, label: str, fractions: int, targets: Sequence, description: str = ""
) -> str:
    """A minimal RTPLAN: label (16 characters), fractions and target prescriptions ((name, total Gy), ...).
    Returns its SOP Instance UID."""
    description = description or label
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as Seq
    from pydicom.uid import generate_uid

    ds = _base(study, RT_PLAN, "RTPLAN", generate_uid(), 90, "SIB plan")
    ds.FrameOfReferenceUID = study.frame_uid
    ds.RTPlanLabel = label[:16]  # SH: 16 characters at most
    ds.RTPlanName = description[:64]
    ds.RTPlanDescription = description
    ds.RTPlanDate, ds.RTPlanTime = study.date, "120000"
    ds.RTPlanGeometry = "PATIENT"
    ds.PlanIntent = "CURATIVE"
    ds.InstanceNumber = 1
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    ref.ReferencedSOPInstanceUID = structure_set_uid
    ds.ReferencedStructureSetSequence = Seq([ref])
    refs = []
    for n, (name, total) in enumerate(targets, start=1):
        d = Dataset()
        d.DoseReferenceNumber = n
        d.DoseReferenceUID = generate_uid()
        d.DoseReferenceStructureType = "VOLUME"
        d.DoseReferenceDescription = name
        d.DoseReferenceType = "TARGET"
        d.TargetPrescriptionDose = float(total)
        refs.append(d)
    ds.DoseReferenceSequence = Seq(refs)
    fg = Dataset()
    fg.FractionGroupNumber = 1
    fg.NumberOfFractionsPlanned = int(fractions)
    fg.NumberOfBeams = 0
    fg.NumberOfBrachyApplicationSetups = 0
    ds.FractionGroupSequence = Seq([fg])
    ds.ApprovalStatus = "UNAPPROVED"
    write_file(ds, str(path))
    return str(ds.SOPInstanceUID)


def write_rtdose(path, dose_gy: np.ndarray, geometry: ImageGeometry, study: Study, plan_uid: str) -> Path:
    """A multi-frame PLAN dose in Gy on its own grid (frames along k, GridFrameOffsetVector relative)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as Seq
    from pydicom.uid import generate_uid

    if tuple(dose_gy.shape) != geometry.shape:
        raise ValueError(f"Dose array shape {dose_gy.shape} is not its grid's {geometry.shape}.")
    dose = np.asarray(dose_gy, float)
    if not np.all(np.isfinite(dose)) or dose.min() < 0:
        raise ValueError("The dose to export has NaN or negative values.")
    ds = _base(study, RT_DOSE, "RTDOSE", generate_uid(), 91, "SIB dose")
    ds.FrameOfReferenceUID = study.frame_uid
    ds.InstanceNumber = 1
    iop, normal = _orientation(geometry)
    ds.ImagePositionPatient = _lps(geometry.ijk_to_ras_points([[0, 0, 0]])[0])
    ds.ImageOrientationPatient = iop
    ds.PixelSpacing = [float(geometry.spacing[1]), float(geometry.spacing[0])]
    ds.SliceThickness = float(geometry.spacing[2])
    ds.NumberOfFrames = geometry.shape[0]
    ds.FrameIncrementPointer = (0x3004, 0x000C)
    ds.GridFrameOffsetVector = [float(k * geometry.spacing[2]) for k in range(geometry.shape[0])]
    ds.Rows, ds.Columns = geometry.shape[1], geometry.shape[2]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 32
    ds.HighBit = 31
    ds.PixelRepresentation = 0
    ds.DoseUnits, ds.DoseType, ds.DoseSummationType = "GY", "PHYSICAL", "PLAN"
    scaling = max(float(dose.max()), 1e-6) / 4.0e9
    ds.DoseGridScaling = f"{scaling:.10g}"
    ds.PixelData = np.round(dose / float(ds.DoseGridScaling)).astype("<u4").tobytes()
    ref = Dataset()
    ref.ReferencedSOPClassUID = RT_PLAN
    ref.ReferencedSOPInstanceUID = plan_uid
    ds.ReferencedRTPlanSequence = Seq([ref])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(ds, str(path))
    return path


def export_case(
    folder,
    case,
    structures: Dict[str, object],
    colors: Optional[Dict[str, tuple]] = None,
    study: Optional[Study] = None,
    prescription_gy: float = 30.0,
    fractions: int = 5,
    mr: Sequence = (),
    mr_to_ct: Optional[np.ndarray] = None,
) -> Dict[str, object]:
    """Write ``case`` (ct, ct_geometry, dose_gy, dose_geometry, level, name) with ``structures`` (name -> Mask on
    the CT grid) under ``folder``: CT/, MR<n>/ (``mr``: (array, geometry, description) each, on their own frame
    of reference), RTSTRUCT.dcm, RTPLAN.dcm (labelled "SIB level <L>") and RTDOSE.dcm. With ``mr_to_ct`` (4x4 RAS,
    MR-frame points to CT-frame points) the MR series share one frame of reference and REG.dcm, a rigid
    Spatial Registration, relates it to the CT's."""
    from .dicom_image import read_image_series
    from .dicom_scan import scan_folder
    from .rtstruct_write import RoiToWrite, default_interpreted_type, write_rtstruct

    folder = Path(folder)
    study = study or Study()
    from pydicom.uid import generate_uid

    write_image_series(folder / "CT", case.ct, case.ct_geometry, study, "CT", 1, "Planning CT")
    mr_frame = generate_uid() if mr_to_ct is not None else None
    for n, (array, geometry, description) in enumerate(mr, start=1):
        write_image_series(
            folder / f"MR{n}", array, geometry, study, "MR", 10 + n, description, mr_frame or generate_uid()
        )
    reg = None
    if mr_to_ct is not None and mr:
        from .reg import ras_to_lps, write_registration

        reg = write_registration(folder / "REG.dcm", study, study.frame_uid, mr_frame, ras_to_lps(mr_to_ct))
    scan = scan_folder(folder / "CT")
    ct_series = read_image_series(next(iter(scan.series.values())), scan)
    colors = colors or {}
    rois = [
        RoiToWrite(name, mask, colors.get(name, (0.5, 0.5, 0.5)), default_interpreted_type(name))
        for name, mask in structures.items()
    ]
    rs = write_rtstruct(folder / "RTSTRUCT.dcm", ct_series, rois, label="Structures", series_description="Structures")
    import pydicom

    ss_uid = str(pydicom.dcmread(str(rs), stop_before_pixels=True).SOPInstanceUID)
    plan_uid = write_rtplan(
        folder / "RTPLAN.dcm",
        study,
        ss_uid,
        f"SIB level {case.level}",
        fractions,
        [("PTV_Eval", prescription_gy)],
        f"{case.name}: SIB spine SBRT, level {case.level}",
    )
    rd = write_rtdose(folder / "RTDOSE.dcm", case.dose_gy, case.dose_geometry, study, plan_uid)
    written = {"folder": folder, "ct": folder / "CT", "rtstruct": rs, "rtplan": folder / "RTPLAN.dcm", "rtdose": rd}
    if reg is not None:
        written["reg"] = reg
    return written
