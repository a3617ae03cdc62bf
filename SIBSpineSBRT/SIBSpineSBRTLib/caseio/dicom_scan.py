"""Walk a case folder and sort its DICOM files: image series, structure sets, doses, plans.

Any file names and nested folders are accepted. Each file is parsed with pydicom; what it is comes from
its SOP Class UID (and Modality). Files that are not DICOM at all (notes, DICOMDIR, thumbnails) are
listed as ignored. Files that claim to be DICOM (the ``DICM`` preamble, a ``.dcm`` name) but cannot be
read completely (truncated, garbled) are listed as corrupt, with the reason, and left out: the rest of the
folder still loads, and whoever uses the scan decides whether a missing file matters (a corrupt CT slice
becomes a gap in the CT, which is an error there, naming the file). A corrupt file is identified as far as its
readable part allows (series, kind): when the folder holds no readable structure set, the corrupt files that
identify as one are offered as its structure sets, so that reading one reports it as truncated or corrupt
rather than the folder as having none.

pydicom reads a truncated file without complaint, stopping where the bytes stop. ``read_dataset`` reads
through a file wrapper that notices a short read (or a seek past the end of the file), so a file cut
anywhere inside an element is reported as corrupt instead of silently losing its tail.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ._pydicom_compat import read_as_implicit_vr
from .errors import CorruptDicomError

# SOP classes (DICOM PS3.4 Annex B)
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2.1"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4.1"
PET_IMAGE = "1.2.840.10008.5.1.4.1.1.128"
RT_DOSE = "1.2.840.10008.5.1.4.1.1.481.2"
RT_STRUCTURE_SET = "1.2.840.10008.5.1.4.1.1.481.3"
RT_PLAN = "1.2.840.10008.5.1.4.1.1.481.5"
RT_ION_PLAN = "1.2.840.10008.5.1.4.1.1.481.8"
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"

IMAGE_CLASSES = {CT_IMAGE: "CT", ENHANCED_CT_IMAGE: "CT", MR_IMAGE: "MR", ENHANCED_MR_IMAGE: "MR", PET_IMAGE: "PT"}
RT_CLASSES = {RT_DOSE: "RTDOSE", RT_STRUCTURE_SET: "RTSTRUCT", RT_PLAN: "RTPLAN", RT_ION_PLAN: "RTPLAN"}

#: Elements a file of each kind must hold to be usable (a file cut between two elements still parses).
#: Type 1 elements of every kind: a file cut short usually loses them (its last elements come from group
#: 0020 and later), which is how a cut exactly between two elements is caught.
COMMON_REQUIRED = ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
REQUIRED = {
    "image": ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns", "PixelData"),
    "RTDOSE": ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns", "PixelData"),
    "RTSTRUCT": ("StructureSetROISequence", "ROIContourSequence"),
    "RTPLAN": ("RTPlanLabel",),
}

_DEFER_BYTES = 64 * 1024  # pixel data is not read during the scan; its presence and length are checked


class _CheckedFile:
    """A read-only file that records the first read or seek that runs past the end of the file."""

    def __init__(self, path, mode: str = "rb"):
        self.name = str(path)
        self._f = open(path, "rb")  # noqa: SIM115 (closed by close())
        self._size = os.fstat(self._f.fileno()).st_size
        self.short: Optional[str] = None

    def read(self, n: int = -1) -> bytes:
        pos = self._f.tell()
        data = self._f.read(n)
        if n is not None and n > 0 and len(data) < n and self.short is None:
            # pydicom ends a dataset by asking for the next 8-byte tag and getting nothing: that is the
            # normal end of a file. Anything else that comes back short means the file was cut.
            if not (len(data) == 0 and n == 8):
                self.short = f"the file ends at byte {pos + len(data)} inside an element that needs {n} bytes"
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        pos = self._f.seek(offset, whence)
        if pos > self._size and self.short is None:
            self.short = f"an element runs to byte {pos} but the file has only {self._size} bytes"
        return pos

    def tell(self) -> int:
        return self._f.tell()

    def close(self) -> None:
        self._f.close()

    @property
    def closed(self) -> bool:
        # pydicom 3 reads a deferred element (header_only) from the file object it was given unless that says
        # it is closed; then it reopens the file by name (as pydicom 2 always does)
        return self._f.closed

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _expected_pixel_bytes(ds) -> Optional[int]:
    """Length of native (uncompressed) pixel data, or None when the transfer syntax is compressed."""
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is not None and ts.is_compressed:
        return None
    try:
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
        bits = int(ds.BitsAllocated)
        return (int(ds.Rows) * int(ds.Columns) * frames * samples * bits + 7) // 8
    except (AttributeError, TypeError, ValueError):
        return None


def _read_bare(path: Path, header_only: bool):
    """A dataset without preamble: read with ``force``; not DICOM unless it names SOP class and instance."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with _CheckedFile(path) as fp:
            ds = pydicom.dcmread(fp, force=True, defer_size=_DEFER_BYTES if header_only else None)
            if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
                raise InvalidDicomError(f"{path} is not a DICOM file.")
            if not header_only:
                for _ in ds.iterall():
                    pass
            if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
                from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

                ds.file_meta = getattr(ds, "file_meta", None) or pydicom.dataset.FileMetaDataset()
                implicit = read_as_implicit_vr(ds)
                ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
            return ds, fp.short
    except InvalidDicomError:
        raise
    except Exception as exc:
        raise InvalidDicomError(f"{path} is not a DICOM file ({exc}).") from exc


def read_dataset(path, header_only: bool = False):
    """Read one DICOM file completely with pydicom, or raise CorruptDicomError naming it.

    ``header_only`` skips loading the pixel data (its length is still checked against the file size and
    the image size). A file without the 128-byte preamble and ``DICM`` marker (older exports write bare
    datasets) is accepted when it parses and names its SOP class. Raises
    ``pydicom.errors.InvalidDicomError`` for a file that is not DICOM at all.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    with warnings.catch_warnings():
        # pydicom warns about harmless value-representation quirks of real exports; we judge the file by
        # whether it is complete and has what we need.
        warnings.simplefilter("ignore")
        try:
            try:
                with _CheckedFile(path) as fp:
                    ds = pydicom.dcmread(fp, defer_size=_DEFER_BYTES if header_only else None)
                    # converting every element reads the values still raw; deferred ones stay on disk
                    if not header_only:
                        for _ in ds.iterall():
                            pass
                    short = fp.short
            except InvalidDicomError:
                ds, short = _read_bare(path, header_only)
        except InvalidDicomError:
            raise
        except Exception as exc:  # pydicom raises many kinds on garbled bytes
            raise CorruptDicomError(
                f"{path}: not a readable DICOM file ({type(exc).__name__}: {exc}). Re-export it from the planning "
                "system, or remove it from the folder."
            ) from exc
    if short:
        raise CorruptDicomError(
            f"{path}: the file is truncated ({short}). Re-export it from the planning system, or remove it from "
            "the folder."
        )
    if "PixelData" in ds and not header_only:
        expected = _expected_pixel_bytes(ds)
        if expected is not None and len(ds.PixelData) < expected:
            raise CorruptDicomError(
                f"{path}: the pixel data has {len(ds.PixelData)} bytes but {ds.Rows}x{ds.Columns} pixels need "
                f"{expected}. Re-export the file."
            )
    return ds


@dataclass
class DicomFile:
    """One parsed file: where it is, what it is, and its header (pixel data not loaded)."""

    path: Path
    kind: str  # "image", "RTSTRUCT", "RTDOSE", "RTPLAN" or "other"
    modality: str
    sop_class_uid: str
    sop_instance_uid: str
    series_uid: str
    study_uid: str
    frame_of_reference_uid: str
    header: object = field(repr=False, default=None)

    @property
    def series_description(self) -> str:
        return str(getattr(self.header, "SeriesDescription", "") or "")

    @property
    def series_number(self) -> str:
        value = getattr(self.header, "SeriesNumber", None)
        return "" if value is None else str(value)


def series_label(modality: str, number: str = "", description: str = "") -> str:
    """How messages name a series, e.g. "CT series 2 'Planning CT'" (never with patient data)."""
    parts = [modality]
    if number:
        parts.append(f"series {number}")
    if description:
        parts.append(f"'{description}'")
    return " ".join(parts)


@dataclass
class ImageSeriesFiles:
    """The files of one image series (one Series Instance UID)."""

    series_uid: str
    modality: str
    files: List[DicomFile]

    @property
    def frame_of_reference_uid(self) -> str:
        return self.files[0].frame_of_reference_uid if self.files else ""

    @property
    def description(self) -> str:
        return self.files[0].series_description if self.files else ""

    @property
    def number(self) -> str:
        return self.files[0].series_number if self.files else ""

    def label(self) -> str:
        """A short human label (modality, series number, description): no patient data."""
        return series_label(self.modality, self.number, self.description)


@dataclass(frozen=True)
class CorruptFile:
    """A file left out of the case, why, and the series and kind ("image", "RTSTRUCT"...) its readable header
    named (empty when not even that could be read)."""

    path: Path
    reason: str
    series_uid: str = ""
    kind: str = ""


@dataclass
class DicomScan:
    """What a folder holds. ``corrupt`` lists (file, reason); ``ignored`` files are not DICOM at all."""

    root: Path
    series: Dict[str, ImageSeriesFiles] = field(default_factory=dict)
    rtstructs: List[DicomFile] = field(default_factory=list)
    rtdoses: List[DicomFile] = field(default_factory=list)
    rtplans: List[DicomFile] = field(default_factory=list)
    other: List[DicomFile] = field(default_factory=list)
    corrupt: List[CorruptFile] = field(default_factory=list)
    ignored: List[Path] = field(default_factory=list)

    def image_series(self, modality: Optional[str] = None) -> List[ImageSeriesFiles]:
        out = [s for s in self.series.values() if modality is None or s.modality == modality]
        return sorted(out, key=lambda s: (s.modality, _number_key(s.number), s.series_uid))

    def find_instance(self, sop_instance_uid: str) -> Optional[DicomFile]:
        for group in (self.rtstructs, self.rtdoses, self.rtplans, self.other):
            for f in group:
                if f.sop_instance_uid == sop_instance_uid:
                    return f
        for s in self.series.values():
            for f in s.files:
                if f.sop_instance_uid == sop_instance_uid:
                    return f
        return None

    def corrupt_in_series(self, series_uid: str) -> List[CorruptFile]:
        """Corrupt files whose readable header still named this series (they are gaps in it)."""
        return [c for c in self.corrupt if series_uid and c.series_uid == series_uid]

    def corrupt_unidentified(self, folders) -> List[CorruptFile]:
        """Corrupt files in ``folders`` whose series could not be read (cut or garbled before the series UID) and
        that are not known to be RT objects: any of them may be a slice a series misses."""
        folders = {Path(f) for f in folders}
        return [
            c
            for c in self.corrupt
            if not c.series_uid and c.kind not in RT_CLASSES.values() and c.path.parent in folders
        ]

    def problems(self) -> List[str]:
        """One message per corrupt file (the file named, the fix said)."""
        return [c.reason for c in self.corrupt]

    def summary(self) -> str:
        parts = [f"{s.label()}: {len(s.files)} files" for s in self.image_series()]
        for name, group in (("RTSTRUCT", self.rtstructs), ("RTDOSE", self.rtdoses), ("RTPLAN", self.rtplans)):
            if group:
                parts.append(f"{name}: {len(group)}")
        if self.corrupt:
            parts.append(f"corrupt: {len(self.corrupt)}")
        return "; ".join(parts) or "no DICOM files"


def _number_key(text: str):
    try:
        return (0, int(text))
    except ValueError:
        return (1, text)


def looks_like_dicom(path) -> bool:
    """By extension or by the DICM preamble (bare datasets without it are found by the folder scan)."""
    path = Path(path)
    if path.suffix.lower() in (".dcm", ".dicom", ".ima"):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _kind(ds) -> Tuple[str, str]:
    sop_class = str(getattr(ds, "SOPClassUID", "") or "")
    modality = str(getattr(ds, "Modality", "") or "").upper()
    if sop_class in IMAGE_CLASSES:
        return "image", IMAGE_CLASSES[sop_class]
    if sop_class in RT_CLASSES:
        return RT_CLASSES[sop_class], RT_CLASSES[sop_class]
    if modality in ("CT", "MR", "PT") and "ImagePositionPatient" in ds:
        return "image", modality
    return "other", modality


def classify(path, ds) -> DicomFile:
    kind, modality = _kind(ds)
    return DicomFile(
        path=Path(path),
        kind=kind,
        modality=modality,
        sop_class_uid=str(getattr(ds, "SOPClassUID", "") or ""),
        sop_instance_uid=str(getattr(ds, "SOPInstanceUID", "") or ""),
        series_uid=str(getattr(ds, "SeriesInstanceUID", "") or ""),
        study_uid=str(getattr(ds, "StudyInstanceUID", "") or ""),
        frame_of_reference_uid=str(getattr(ds, "FrameOfReferenceUID", "") or ""),
        header=ds,
    )


def _missing_required(f: DicomFile) -> List[str]:
    if f.kind == "other":
        return []
    return [name for name in COMMON_REQUIRED + REQUIRED.get(f.kind, ()) if name not in f.header]


def _identify_corrupt(path: Path):
    """(series UID, kind, partial dataset) of a corrupt file, as far as pydicom can read its start."""
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(
                str(path),
                stop_before_pixels=True,
                force=True,
                specific_tags=["SOPClassUID", "SOPInstanceUID", "Modality", "SeriesInstanceUID", "StudyInstanceUID"],
            )
            kind = _kind(ds)[0] if ("SOPClassUID" in ds or "Modality" in ds) else ""
            return str(getattr(ds, "SeriesInstanceUID", "") or ""), kind, ds
    except Exception:
        return "", "", None


def _corrupt(path: Path, reason: str, series_uid: Optional[str] = None, kind: Optional[str] = None):
    found_series, found_kind, ds = _identify_corrupt(path)
    series = found_series if series_uid is None else series_uid
    return CorruptFile(path, reason, series, found_kind if kind is None else kind), ds


def scan_folder(folder, recursive: bool = True) -> DicomScan:
    """Parse every file under ``folder`` (nested folders included) and sort them (see the module doc)."""
    from pydicom.errors import InvalidDicomError

    root = Path(folder)
    if not root.is_dir():
        raise CorruptDicomError(f"Case folder {root} does not exist or is not a folder.")
    scan = DicomScan(root)
    unreadable_structure_sets: List[DicomFile] = []
    walker = sorted(p for p in (root.rglob("*") if recursive else root.iterdir()) if p.is_file())
    for path in walker:
        if path.name.upper() == "DICOMDIR":
            scan.ignored.append(path)
            continue
        try:
            ds = read_dataset(path, header_only=True)
        except InvalidDicomError:
            if looks_like_dicom(path):
                reason = f"{path}: named or marked as DICOM but not readable as DICOM; re-export it or remove it."
                scan.corrupt.append(_corrupt(path, reason)[0])
            else:
                scan.ignored.append(path)
            continue
        except CorruptDicomError as exc:
            corrupt, partial = _corrupt(path, str(exc))
            scan.corrupt.append(corrupt)
            if corrupt.kind == "RTSTRUCT" and partial is not None:
                unreadable_structure_sets.append(classify(path, partial))
            continue
        f = classify(path, ds)
        if f.sop_class_uid == MEDIA_STORAGE_DIRECTORY:
            scan.ignored.append(path)
            continue
        missing = _missing_required(f)
        if missing:
            scan.corrupt.append(
                CorruptFile(
                    path,
                    f"{path}: {f.modality or 'DICOM'} file lacks {', '.join(missing)} (truncated or incomplete); "
                    "re-export it or remove it.",
                    f.series_uid,
                    f.kind,
                )
            )
            if f.kind == "RTSTRUCT":
                unreadable_structure_sets.append(f)
            continue
        if f.kind == "image":
            group = scan.series.setdefault(f.series_uid, ImageSeriesFiles(f.series_uid, f.modality, []))
            group.files.append(f)
        elif f.kind == "RTSTRUCT":
            scan.rtstructs.append(f)
        elif f.kind == "RTDOSE":
            scan.rtdoses.append(f)
        elif f.kind == "RTPLAN":
            scan.rtplans.append(f)
        else:
            scan.other.append(f)
    if not scan.rtstructs:
        # the only structure sets are corrupt: offer them, so that reading one names it as truncated or corrupt
        scan.rtstructs.extend(unreadable_structure_sets)
    return scan
