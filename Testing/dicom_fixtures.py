"""Synthetic DICOM-RT cases written with pydicom, for the case I/O tests (no downloads).

Everything here is written independently of the library's readers: positions are computed straight from
DICOM's definitions (pixel (i, j) of a slice lies at IPP + i*si*row_dir + j*sj*col_dir, LPS), so reading
them back tests the library rather than repeating it.

``make_case`` writes a small thoracic spine case: a CT (non-square pixels, Hounsfield units stored with
a rescale intercept), two MR series (one on the CT's frame of reference, one not), an RTSTRUCT with CTV,
GTV, SpinalCanal, SpinalCord and a ring with a hole, an RTDOSE whose values are a known linear function
of position, and an RTPLAN (30 Gy / 5 fractions with a 40 Gy boost).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

PATIENT_NAME = "Testpatient^Secret"
PATIENT_ID = "SECRET-ID-4711"

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
RT_DOSE = "1.2.840.10008.5.1.4.1.1.481.2"
RT_STRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
RT_PLAN = "1.2.840.10008.5.1.4.1.1.481.5"

#: Image Orientation (Patient) of the common patient positions.
ORIENTATIONS = {
    "HFS": (1, 0, 0, 0, 1, 0),
    "HFP": (-1, 0, 0, 0, -1, 0),
    "FFS": (-1, 0, 0, 0, 1, 0),
    "FFP": (1, 0, 0, 0, -1, 0),
}


def save(ds, path) -> None:
    """Write ``ds`` in the DICOM File Format (preamble, complete file meta, encoded as its Transfer Syntax
    UID says) with pydicom 2.x or 3.x: the library's one pydicom version shim."""
    from SIBSpineSBRTLib.caseio._pydicom_compat import write_file

    write_file(ds, path)


def uid() -> str:
    from pydicom.uid import generate_uid

    return generate_uid()


@dataclass
class Grid:
    """A DICOM image grid: centre (LPS mm), orientation, sizes and spacings."""

    rows: int
    cols: int
    slices: int
    pixel_spacing: Tuple[float, float]  # (row spacing = along j, column spacing = along i)
    slice_step: float
    center: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    iop: Tuple[float, ...] = ORIENTATIONS["HFS"]

    @property
    def row_dir(self) -> np.ndarray:
        return np.asarray(self.iop[:3], float)

    @property
    def col_dir(self) -> np.ndarray:
        return np.asarray(self.iop[3:], float)

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_dir, self.col_dir)

    def ipp(self, k: int) -> np.ndarray:
        sj, si = self.pixel_spacing
        c = np.asarray(self.center, float)
        first = c - (self.cols - 1) / 2 * si * self.row_dir - (self.rows - 1) / 2 * sj * self.col_dir
        first = first - (self.slices - 1) / 2 * self.slice_step * self.normal
        return first + k * self.slice_step * self.normal

    def lps(self, k: int) -> np.ndarray:
        """(rows, cols, 3) LPS centres of the pixels of slice k."""
        sj, si = self.pixel_spacing
        j, i = np.mgrid[0 : self.rows, 0 : self.cols]
        return self.ipp(k) + i[..., None] * si * self.row_dir + j[..., None] * sj * self.col_dir


def _base(sop_class: str, modality: str, study_uid: str, series_uid: str, frame_uid: Optional[str]):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = "20250101"
    ds.StudyTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.Manufacturer = "SyntheticTPS"
    if frame_uid is not None:
        ds.FrameOfReferenceUID = frame_uid
    return ds


@dataclass
class SeriesInfo:
    """What was written for an image series (the test truth)."""

    grid: Grid
    modality: str
    study_uid: str
    series_uid: str
    frame_uid: str
    files: List[Path] = field(default_factory=list)
    sop_uids: List[str] = field(default_factory=list)  # in k order of ``grid``
    values: Optional[np.ndarray] = None  # (slices, rows, cols) modality values


def write_image_series(
    folder,
    grid: Grid,
    values: np.ndarray,
    modality: str = "CT",
    study_uid: Optional[str] = None,
    frame_uid: Optional[str] = None,
    series_number: int = 1,
    description: str = "",
    name=lambda n, k: f"IMG{n:04d}",
    intercept: float = -1024.0,
    shuffle_seed: Optional[int] = 0,
) -> SeriesInfo:
    """Write one single-frame image per slice; ``values`` are modality values (HU for CT) [k, row, col].

    File names come from ``name(file_number, k)``; files are numbered in a shuffled order so that name
    order is not slice order.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    info = SeriesInfo(grid, modality, study_uid or uid(), uid(), frame_uid or uid(), values=values)
    order = np.arange(grid.slices)
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(grid.slices)
    info.files = [None] * grid.slices
    info.sop_uids = [None] * grid.slices
    for n, k in enumerate(order):
        ds = _base(
            CT_IMAGE if modality == "CT" else MR_IMAGE, modality, info.study_uid, info.series_uid, info.frame_uid
        )
        ds.SeriesNumber = series_number
        ds.SeriesDescription = description
        ds.InstanceNumber = int(k) + 1
        ds.ImagePositionPatient = [float(f"{v:.6f}") for v in grid.ipp(int(k))]
        ds.ImageOrientationPatient = [float(v) for v in grid.iop]
        ds.PixelSpacing = [float(v) for v in grid.pixel_spacing]
        ds.SliceThickness = abs(grid.slice_step)
        ds.PositionReferenceIndicator = ""
        stored = np.round(values[k] - intercept).astype(np.uint16)
        # what pydicom 3's Dataset.set_pixel_data(stored, "MONOCHROME2", 16) sets (it is not in pydicom 2.x)
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = stored.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = stored.astype("<u2").tobytes()
        ds["PixelData"].VR = "OW"
        ds.RescaleIntercept = intercept
        ds.RescaleSlope = 1
        if modality == "CT":
            ds.RescaleType = "HU"
        path = folder / name(n, int(k))
        path.parent.mkdir(parents=True, exist_ok=True)
        save(ds, path)
        info.files[k] = path
        info.sop_uids[k] = ds.SOPInstanceUID
    return info


def circle(cx: float, cy: float, r: float, z: float, n: int = 72, start: float = 0.13) -> np.ndarray:
    """(n, 3) LPS polygon of a circle in an axial plane (counter-clockwise in x, y)."""
    t = start + np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t), np.full(n, z)])


def ellipse(cx, cy, rx, ry, z, n: int = 90) -> np.ndarray:
    t = 0.07 + np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([cx + rx * np.cos(t), cy + ry * np.sin(t), np.full(n, z)])


def keyhole(cx, cy, r_out, r_in, z, n: int = 72, cut: float = 0.0) -> np.ndarray:
    """One contour tracing a ring: out along a cut, round the outer circle, back in, round the hole reversed."""
    t = np.linspace(0, 2 * np.pi, n + 1) + cut
    outer = np.column_stack([cx + r_out * np.cos(t), cy + r_out * np.sin(t)])
    inner = np.column_stack([cx + r_in * np.cos(t[::-1]), cy + r_in * np.sin(t[::-1])])
    pts = np.vstack([outer, inner])
    return np.column_stack([pts, np.full(len(pts), z)])


@dataclass
class Roi:
    name: str
    contours: List[np.ndarray]  # (N, 3) LPS each
    color: Tuple[int, int, int] = (255, 0, 0)
    interpreted_type: str = "ORGAN"
    frame_uid: Optional[str] = None  # default: the CT's
    geometric_type: str = "CLOSED_PLANAR"


def _fmt(v: float) -> str:
    return f"{v:.4f}"


def write_rtstruct(
    path,
    ct: SeriesInfo,
    rois: Sequence[Roi],
    frame_uid: Optional[str] = None,
    label: str = "TPS structures",
) -> str:
    """An RTSTRUCT referencing ``ct`` (override its frame of reference with ``frame_uid``)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as Seq

    frame = frame_uid or ct.frame_uid
    ds = _base(RT_STRUCT, "RTSTRUCT", ct.study_uid, uid(), None)
    ds.SeriesNumber = 50
    ds.StructureSetLabel = label
    ds.StructureSetDate = "20250102"
    ds.StructureSetTime = "101010"
    ds.OperatorsName = ""
    fr = Dataset()
    fr.FrameOfReferenceUID = frame
    st = Dataset()
    st.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    st.ReferencedSOPInstanceUID = ct.study_uid
    se = Dataset()
    se.SeriesInstanceUID = ct.series_uid
    se.ContourImageSequence = Seq([_ref(CT_IMAGE, u) for u in ct.sop_uids])
    st.RTReferencedSeriesSequence = Seq([se])
    fr.RTReferencedStudySequence = Seq([st])
    ds.ReferencedFrameOfReferenceSequence = Seq([fr])
    ssroi, roic, obs = [], [], []
    z_of_slice = {round(float(ct.grid.ipp(k) @ np.array([0, 0, 1.0])), 3): u for k, u in enumerate(ct.sop_uids)}
    for n, roi in enumerate(rois, start=1):
        a = Dataset()
        a.ROINumber = n
        a.ReferencedFrameOfReferenceUID = roi.frame_uid or frame
        a.ROIName = roi.name
        a.ROIGenerationAlgorithm = "MANUAL"
        ssroi.append(a)
        b = Dataset()
        b.ROIDisplayColor = list(roi.color)
        b.ReferencedROINumber = n
        cs = []
        for c in roi.contours:
            item = Dataset()
            ref = z_of_slice.get(round(float(c[0, 2]), 3))
            if ref:
                item.ContourImageSequence = Seq([_ref(CT_IMAGE, ref)])
            item.ContourGeometricType = roi.geometric_type
            item.NumberOfContourPoints = len(c)
            item.ContourData = [_fmt(v) for v in np.asarray(c, float).ravel()]
            cs.append(item)
        if cs:
            b.ContourSequence = Seq(cs)
        roic.append(b)
        o = Dataset()
        o.ObservationNumber = n
        o.ReferencedROINumber = n
        o.RTROIInterpretedType = roi.interpreted_type
        o.ROIInterpreter = ""
        obs.append(o)
    ds.StructureSetROISequence = Seq(ssroi)
    ds.ROIContourSequence = Seq(roic)
    ds.RTROIObservationsSequence = Seq(obs)
    save(ds, path)
    return ds.SOPInstanceUID


def _ref(cls: str, instance: str):
    from pydicom.dataset import Dataset

    d = Dataset()
    d.ReferencedSOPClassUID = cls
    d.ReferencedSOPInstanceUID = instance
    return d


def write_rtdose(
    path,
    grid: Grid,
    dose_gy: np.ndarray,
    study_uid: str,
    frame_uid: str,
    units: Optional[str] = "GY",
    scaling: float = 1e-4,
    offsets: Optional[Sequence[float]] = None,
    summation: str = "PLAN",
    plan_uid: Optional[str] = None,
) -> str:
    """A multi-frame RTDOSE: frame f at grid.ipp(0) + offsets[f] * normal (default f * slice_step).

    ``dose_gy`` is [frame, row, col]; stored as uint32 = round(dose / scaling) (in ``units``: values are
    divided by 0.01 for CGY). ``units=None`` leaves DoseUnits out.
    """
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as Seq

    ds = _base(RT_DOSE, "RTDOSE", study_uid, uid(), frame_uid)
    ds.SeriesNumber = 70
    ds.ImagePositionPatient = [float(f"{v:.6f}") for v in grid.ipp(0)]
    ds.ImageOrientationPatient = [float(v) for v in grid.iop]
    ds.PixelSpacing = [float(v) for v in grid.pixel_spacing]
    ds.SliceThickness = abs(grid.slice_step)
    if offsets is None:
        offsets = [f * grid.slice_step for f in range(grid.slices)]
    ds.GridFrameOffsetVector = [float(f"{v:.6f}") for v in offsets]
    ds.FrameIncrementPointer = 0x3004000C
    if units is not None:
        ds.DoseUnits = units
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = summation
    ds.DoseGridScaling = scaling
    value = np.asarray(dose_gy, float) / (0.01 if units == "CGY" else 1.0)
    stored = np.round(value / scaling).astype("<u4")
    ds.Rows, ds.Columns = grid.rows, grid.cols
    ds.NumberOfFrames = stored.shape[0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 32, 32, 31, 0
    ds.PixelData = stored.tobytes()
    if plan_uid:
        r = Dataset()
        r.ReferencedSOPClassUID = RT_PLAN
        r.ReferencedSOPInstanceUID = plan_uid
        ds.ReferencedRTPlanSequence = Seq([r])
    save(ds, path)
    return ds.SOPInstanceUID


def write_rtplan(
    path, study_uid: str, frame_uid: str, targets=((30.0, 1), (40.0, 2)), fractions: int = 5, ss_uid: str = ""
) -> str:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as Seq

    ds = _base(RT_PLAN, "RTPLAN", study_uid, uid(), frame_uid)
    ds.SeriesNumber = 60
    ds.RTPlanLabel = "SIB30-40"
    ds.RTPlanDate = "20250103"
    ds.RTPlanTime = "090000"
    ds.RTPlanGeometry = "PATIENT"
    refs = []
    for n, (dose, roi) in enumerate(targets, start=1):
        d = Dataset()
        d.DoseReferenceNumber = n
        d.DoseReferenceStructureType = "VOLUME"
        d.DoseReferenceType = "TARGET"
        d.ReferencedROINumber = roi
        d.TargetPrescriptionDose = dose
        refs.append(d)
    ds.DoseReferenceSequence = Seq(refs)
    fg = Dataset()
    fg.FractionGroupNumber = 1
    fg.NumberOfFractionsPlanned = fractions
    fg.NumberOfBeams = 0
    fg.NumberOfBrachyApplicationSetups = 0
    ds.FractionGroupSequence = Seq([fg])
    if ss_uid:
        ds.ReferencedStructureSetSequence = Seq([_ref(RT_STRUCT, ss_uid)])
    save(ds, path)
    return ds.SOPInstanceUID


# -- the standard synthetic case ---------------------------------------------------------------------


def dose_function(lps: np.ndarray) -> np.ndarray:
    """Known dose (Gy) at LPS points: linear in x, y and z, positive everywhere on the grids used."""
    p = np.asarray(lps, float)
    return 20.0 + 0.3 * p[..., 0] - 0.2 * p[..., 1] + 0.1 * p[..., 2]


def ct_values(grid: Grid) -> np.ndarray:
    """HU phantom on ``grid``: air, a body ellipse, a bony vertebral body; [k, row, col]."""
    out = np.empty((grid.slices, grid.rows, grid.cols))
    for k in range(grid.slices):
        p = grid.lps(k)
        x, y = p[..., 0], p[..., 1]
        hu = np.full(x.shape, -1000.0)
        hu[(x / 24) ** 2 + ((y + 3) / 22) ** 2 <= 1] = 20.0
        hu[((x - 0.3) / 12) ** 2 + ((y + 5.2) / 9) ** 2 <= 1] = 400.0
        out[k] = hu
    return out


@dataclass
class SyntheticCase:
    folder: Path
    ct: SeriesInfo
    mr: List[SeriesInfo]
    rtstruct_path: Path
    rtstruct_uid: str
    dose_path: Optional[Path]
    dose_grid: Optional[Grid]
    plan_path: Optional[Path]
    rois: Dict[str, Roi]


CT_GRID = Grid(rows=60, cols=56, slices=26, pixel_spacing=(0.8, 0.9), slice_step=2.0, center=(0.21, -2.13, 10.0))


def case_rois(ct_grid: Grid) -> Dict[str, Roi]:
    """Contours on every CT slice within each structure's extent (axial planes through slice centres)."""
    zs = [float(ct_grid.ipp(k)[2]) for k in range(ct_grid.slices)]

    def planes(z0, z1):
        return [z for z in zs if z0 <= z <= z1]

    rois = {
        "CTV": Roi("CTV", [ellipse(0.31, -5.17, 12.1, 9.13, z) for z in planes(0.0, 20.0)], (0, 200, 0), "CTV"),
        "GTV": Roi("GTV", [circle(3.07, -5.41, 5.03, z) for z in planes(6.0, 14.0)], (255, 0, 0), "GTV"),
        "SpinalCanal": Roi(
            "SpinalCanal", [circle(0.23, 9.91, 7.04, z) for z in planes(-14.0, 34.0)], (120, 80, 200), "ORGAN"
        ),
        "SpinalCord": Roi("Cord", [circle(0.23, 9.91, 4.02, z) for z in planes(-14.0, 34.0)], (255, 255, 0), "ORGAN"),
        "Ring": Roi(
            "Ring",
            [
                c
                for z in planes(2.0, 12.0)
                for c in (circle(-14.1, -14.3, 6.03, z), circle(-14.1, -14.3, 3.01, z)[::-1])
            ],
            (0, 128, 255),
            "ORGAN",
        ),
    }
    return rois


def make_case(
    folder,
    ct_grid: Grid = CT_GRID,
    with_mr: bool = True,
    with_dose: bool = True,
    with_plan: bool = True,
    dose_units: Optional[str] = "GY",
    structure_frame: Optional[str] = None,
    dose_frame: Optional[str] = None,
) -> SyntheticCase:
    """Write the standard synthetic case under ``folder`` (nested folders, file names without extension)."""
    folder = Path(folder)
    ct = write_image_series(
        folder / "export" / "CT",
        ct_grid,
        ct_values(ct_grid),
        "CT",
        series_number=2,
        description="Planning CT",
        name=lambda n, k: f"{(n * 7919) % 10007:05x}",
    )
    mrs = []
    if with_mr:
        mr_grid = Grid(rows=32, cols=30, slices=10, pixel_spacing=(1.5, 1.4), slice_step=3.0, center=(1.0, -1.0, 9.0))
        mr_values = np.fromfunction(lambda k, j, i: 100 + 5 * k + j + i, (10, 32, 30))
        mrs.append(
            write_image_series(
                folder / "export" / "MR" / "t2",
                mr_grid,
                mr_values,
                "MR",
                ct.study_uid,
                ct.frame_uid,
                5,
                "T2 SAG",
                name=lambda n, k: f"mr_t2_{n}.dcm",
                intercept=0.0,
            )
        )
        mr2 = Grid(rows=20, cols=24, slices=8, pixel_spacing=(2.0, 2.0), slice_step=4.0, iop=ORIENTATIONS["FFS"])
        mrs.append(
            write_image_series(
                folder / "mr_other",
                mr2,
                np.full((8, 20, 24), 50.0),
                "MR",
                ct.study_uid,
                None,
                6,
                "T1 other frame",
                name=lambda n, k: f"x{n}",
                intercept=0.0,
            )
        )
    rois = case_rois(ct_grid)
    rt_path = folder / "export" / "rt" / "structs"
    rt_path.parent.mkdir(parents=True, exist_ok=True)
    ss_uid = write_rtstruct(rt_path, ct, list(rois.values()), frame_uid=structure_frame)
    plan_path = None
    plan_uid = None
    if with_plan:
        plan_path = folder / "export" / "rt" / "plan.dcm"
        plan_uid = write_rtplan(plan_path, ct.study_uid, ct.frame_uid, ss_uid=ss_uid)
    dose_path, dose_grid = None, None
    if with_dose:
        dose_grid = Grid(
            rows=34, cols=30, slices=15, pixel_spacing=(2.0, 2.0), slice_step=4.0, center=(0.21, -2.13, 10.0)
        )
        dose = np.stack([dose_function(dose_grid.lps(k)) for k in range(dose_grid.slices)])
        dose_path = folder / "export" / "rt" / "dose"
        write_rtdose(
            dose_path, dose_grid, dose, ct.study_uid, dose_frame or ct.frame_uid, units=dose_units, plan_uid=plan_uid
        )
    (folder / "README.txt").write_text("exported " + datetime.date(2025, 1, 1).isoformat())
    return SyntheticCase(folder, ct, mrs, rt_path, ss_uid, dose_path, dose_grid, plan_path, rois)


def recompress_with_simpleitk(path, compressor: str = "JPEG") -> None:
    """Rewrite an image file with SimpleITK (GDCM) as JPEG Lossless (process 14), HU stored directly.

    pydicom decodes this transfer syntax only with extra plugins (pylibjpeg, gdcm), so the library's
    SimpleITK fallback is what reads it. GDCM's writer switches the process locale to "C", which would make
    later ``Path.read_text()`` calls in the same test run decode as ASCII: the locale is restored.
    """
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.LoadPrivateTagsOn()
    reader.ReadImageInformation()
    image = sitk.Cast(reader.Execute(), sitk.sitkInt16)  # GDCM applied the rescale: HU values
    skip = {"0028|1052", "0028|1053", "0028|1054", "0028|0100", "0028|0101", "0028|0102", "0028|0103"}
    for key in reader.GetMetaDataKeys():
        if key not in skip:
            image.SetMetaData(key, reader.GetMetaData(key))
    writer = sitk.ImageFileWriter()
    writer.SetImageIO("GDCMImageIO")
    writer.KeepOriginalImageUIDOn()
    writer.SetUseCompression(True)
    writer.SetCompressor(compressor)
    writer.SetFileName(str(path))
    import locale

    saved = locale.setlocale(locale.LC_ALL, None)
    try:
        writer.Execute(image)
    finally:
        locale.setlocale(locale.LC_ALL, saved)  # GDCM's writer sets the process locale to "C" (ASCII)


def rewrite_without_preamble(path) -> None:
    """Rewrite a file as a bare implicit-VR dataset: no 128-byte preamble, no DICM, no file meta (old exports)."""
    import pydicom
    from pydicom.filebase import DicomFileLike
    from pydicom.filewriter import write_dataset

    ds = pydicom.dcmread(path)
    del ds.file_meta
    with open(path, "wb") as fp:
        out = DicomFileLike(fp)
        out.is_little_endian, out.is_implicit_VR = True, True
        write_dataset(out, ds)
