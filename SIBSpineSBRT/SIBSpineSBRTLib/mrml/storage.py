"""Slicer file formats through MRML storage nodes: .nrrd volumes, .seg.nrrd segmentations, .mrb scenes.

Files are checked in pure Python before ITK or VTK reads them (``check_volume_file``,
``check_segmentation_file``): slicer-core aborts the whole process (``std::bad_alloc``, an uncaught ITK
exception) on a header it cannot honour, and reads a short file without complaint. A NRRD header must give 3
domain axes (a .seg.nrrd may add a leading list axis of layers), positive sizes, a known type, a raw, gzip or
bzip2 encoding and, for a .seg.nrrd, segment extents inside its labelmap; the voxel data must be as long as the
sizes say (raw data by the file size, compressed data by streaming decompression, nothing kept); and the voxels,
and the reference grid a segmentation's masks are read on, must fit in the available memory. Other formats
(NIfTI, MetaImage...) are checked through SimpleITK's header-only read, and NIfTI's data length is checked
too. Each failure is a ``StorageError`` naming the file, what is wrong and the fix.
"""

from __future__ import annotations

import bz2
import math
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple


class StorageError(OSError):
    """A file could not be read or written as a Slicer file."""


# -- checking files before ITK/VTK read them -----------------------------------------------------------

#: NRRD type names (every spelling the format allows) -> bytes per value.
NRRD_TYPE_BYTES: Dict[str, int] = {}
for _size, _names in (
    (1, "signed char, int8, int8_t, uchar, unsigned char, uint8, uint8_t"),
    (
        2,
        "short, short int, signed short, signed short int, int16, int16_t, ushort, unsigned short, "
        "unsigned short int, uint16, uint16_t",
    ),
    (4, "int, signed int, int32, int32_t, uint, unsigned int, uint32, uint32_t, float"),
    (
        8,
        "longlong, long long, long long int, signed long long, signed long long int, int64, int64_t, ulonglong, "
        "unsigned long long, unsigned long long int, uint64, uint64_t, double",
    ),
):
    NRRD_TYPE_BYTES.update({n.strip(): _size for n in _names.split(",")})
NRRD_FLOAT_TYPES = ("float", "double")
#: Encodings slicer-core reads that can be checked here (text and hex encodings are not accepted).
NRRD_ENCODINGS = {"raw": "raw", "gzip": "gzip", "gz": "gzip", "bzip2": "bzip2", "bz2": "bzip2"}
#: Reading a volume holds its voxels about twice (ITK's buffer, then VTK's image); a segmentation a third time
#: (its layers are split into segments).
VOLUME_MEMORY_FACTOR = 2
SEGMENTATION_MEMORY_FACTOR = 3
_MAX_HEADER_BYTES = 16 << 20
_CHUNK = 1 << 20
_RESAVE = "Re-save it from 3D Slicer (or re-export it) and give the complete file."


def available_memory_bytes() -> Optional[int]:
    """Memory this process can still allocate: MemAvailable (/proc/meminfo, else os.sysconf), lowered to the
    room left under a cgroup memory limit; None when unknown."""
    found: List[int] = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    if not found:
        try:
            found.append(int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE")))
        except (AttributeError, OSError, ValueError):
            pass
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit != "max" and int(limit) < 1 << 60:
                found.append(max(0, int(limit) - int(Path(usage_file).read_text().strip())))
            break
        except (OSError, ValueError):
            continue
    return min(found) if found else None


def _gb(n: float) -> str:
    return f"{n / 1e9:.3g} GB" if n >= 1e8 else f"{n / 1e6:.3g} MB"


def _check_memory(path, what: str, needed: int, detail: str) -> None:
    available = available_memory_bytes()
    if available is not None and needed > available:
        raise StorageError(
            f"{path}: reading this {what} needs about {_gb(needed)} of memory ({detail}), more than the "
            f"{_gb(available)} available. Its header is probably damaged (check the sizes); otherwise crop or "
            "resample it in 3D Slicer, or run on a machine with more memory."
        )


def _title(what: str) -> str:
    return what[:1].upper() + what[1:]


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise StorageError(f"{what} file {path} does not exist.")
    if not path.is_file():
        raise StorageError(f"{what} file {path} is not a file (a folder?). Give the file itself.")
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise StorageError(f"{what} file {path} cannot be opened ({exc.strerror or exc}).") from None
    if size == 0:
        raise StorageError(f"{what} file {path} is empty (0 bytes). {_RESAVE}")


@dataclass
class NrrdHeader:
    """The parts of a NRRD header the checks use: ``fields`` (lower-case names, spaces removed), the
    ``key:=value`` pairs, and where the attached data start."""

    path: Path
    fields: Dict[str, str]
    keys: Dict[str, str] = field(default_factory=dict)
    data_offset: int = 0
    sizes: Tuple[int, ...] = ()
    type_bytes: int = 0
    encoding: str = "raw"

    @property
    def voxels(self) -> int:
        return math.prod(self.sizes)

    @property
    def data_bytes(self) -> int:
        return self.voxels * self.type_bytes

    @property
    def type_name(self) -> str:
        return self.fields.get("type", "")

    @property
    def is_segmentation(self) -> bool:
        """Slicer's segment metadata (``Segment0_ID``..., ``Segmentation_...``) are present."""
        return any(k.startswith("Segmentation_") or (k.startswith("Segment") and "_" in k) for k in self.keys)


def is_nrrd(path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(7) == b"NRRD000"
    except OSError:
        return False


def read_nrrd_header(path) -> NrrdHeader:
    """Parse a NRRD header (no voxel data read); StorageError when it is not one."""
    path = Path(path)
    fields: Dict[str, str] = {}
    keys: Dict[str, str] = {}
    with open(path, "rb") as f:
        if f.readline(64).rstrip(b"\r\n")[:7] != b"NRRD000":
            raise StorageError(f"{path} is not a NRRD file (it does not start with NRRD000).")
        while True:
            raw = f.readline(_MAX_HEADER_BYTES)
            if not raw:
                break  # a header without data (a detached header, or a file cut in its header)
            if f.tell() > _MAX_HEADER_BYTES:
                raise StorageError(f"{path}: the NRRD header does not end within {_gb(_MAX_HEADER_BYTES)}. {_RESAVE}")
            line = raw.rstrip(b"\r\n").decode("latin-1")
            if not line:
                break
            if line.startswith("#"):
                continue
            if ":=" in line:
                k, v = line.split(":=", 1)
                keys[k] = v
            elif ":" in line:
                k, v = line.split(":", 1)
                fields[k.strip().lower().replace(" ", "")] = v.strip()
            else:
                raise StorageError(f"{path}: the NRRD header line '{line[:60]}' is not 'field: value'. {_RESAVE}")
        return NrrdHeader(path, fields, keys, f.tell())


_SPACES_3D = {
    "ras",
    "las",
    "lps",
    "right-anterior-superior",
    "left-anterior-superior",
    "left-posterior-superior",
    "scanner-xyz",
    "3d-right-handed",
    "3d-left-handed",
}
_DOMAIN_KINDS = ("domain", "space", "time")


def _numbers(text: str, what: str, path: Path, kind=float) -> List:
    try:
        values = [kind(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise StorageError(f"{path}: the NRRD header's {what} '{text[:80]}' are not numbers. {_RESAVE}") from None
    if kind is float and not all(math.isfinite(v) for v in values):
        raise StorageError(f"{path}: the NRRD header's {what} '{text[:80]}' are not finite numbers. {_RESAVE}")
    return values


def _space_directions(text: str, path: Path) -> List[Optional[Tuple[float, ...]]]:
    """``none`` -> None, ``(a,b,c)`` -> (a, b, c), in axis order."""
    out: List[Optional[Tuple[float, ...]]] = []
    rest = text.strip()
    while rest:
        if rest.lower().startswith("none"):
            out.append(None)
            rest = rest[4:].strip()
            continue
        end = rest.find(")")
        if not rest.startswith("(") or end < 0:
            raise StorageError(f"{path}: the NRRD header's space directions '{text[:80]}' cannot be read. {_RESAVE}")
        out.append(tuple(_numbers(rest[1:end], "space directions", path)))
        rest = rest[end + 1 :].strip()
    return out


def _check_nrrd_geometry(h: NrrdHeader, what: str, segmentation: bool) -> None:
    f, path = h.fields, h.path
    try:
        dim = int(f["dimension"])
    except KeyError:
        raise StorageError(f"{path}: the NRRD header has no 'dimension' field. {_RESAVE}") from None
    except ValueError:
        raise StorageError(f"{path}: the NRRD dimension '{f['dimension']}' is not a whole number. {_RESAVE}") from None
    sizes = tuple(_numbers(f.get("sizes", ""), "sizes", path, int))
    if len(sizes) != dim or any(s < 1 for s in sizes):
        raise StorageError(
            f"{path}: the NRRD header's sizes '{f.get('sizes', '')}' are not {dim} positive whole numbers (dimension "
            f"{dim}). {_RESAVE}"
        )
    h.sizes = sizes
    type_name = " ".join(f.get("type", "").lower().split())
    if type_name not in NRRD_TYPE_BYTES:
        raise StorageError(
            f"{path}: NRRD voxel type '{f.get('type', '')}' is not a number type ITK reads (e.g. short, float). "
            f"{_RESAVE}"
        )
    h.type_bytes = NRRD_TYPE_BYTES[type_name]
    encoding = f.get("encoding", "").lower()
    if encoding not in NRRD_ENCODINGS:
        raise StorageError(
            f"{path}: NRRD encoding '{f.get('encoding', '')}' is not raw, gzip or bzip2. Re-save it from 3D Slicer "
            "(gzip, the default) or as raw data."
        )
    h.encoding = NRRD_ENCODINGS[encoding]
    if h.type_bytes > 1 and f.get("endian", "").lower() not in ("little", "big"):  # Teem aborts the process
        raise StorageError(
            f"{path}: the NRRD header has no 'endian' field (little or big), which its voxel type '{f.get('type')}' "
            f"needs. {_RESAVE}"
        )

    space_dim = None
    if "space" in f:
        space = f["space"].lower()
        space_dim = 3 if space in _SPACES_3D else None
        if space_dim is None:
            raise StorageError(
                f"{path}: NRRD space '{f['space']}' is not a 3-D patient space (such as left-posterior-superior); "
                f"a {what} must be a 3-D volume. Re-save it from 3D Slicer."
            )
    elif "spacedimension" in f:
        space_dim = _numbers(f["spacedimension"], "space dimension", path, int)[:1] or [0]
        space_dim = space_dim[0]
        if space_dim != 3:
            raise StorageError(f"{path}: NRRD space dimension {space_dim}; a {what} must be a 3-D volume. {_RESAVE}")
    kinds = f.get("kinds", "").lower().split()
    if "spacedirections" in f:
        directions = _space_directions(f["spacedirections"], path)
        if len(directions) != dim:
            raise StorageError(
                f"{path}: the NRRD header gives {len(directions)} space directions for {dim} axes. {_RESAVE}"
            )
        domain = [d is not None for d in directions]
        vectors = [d for d in directions if d is not None]
        if any(len(v) != 3 for v in vectors):
            raise StorageError(
                f"{path}: NRRD space directions are not 3-D vectors ('{f['spacedirections']}'). {_RESAVE}"
            )
        if len(vectors) == 3:
            a, b, c = vectors
            det = (
                a[0] * (b[1] * c[2] - b[2] * c[1])
                - a[1] * (b[0] * c[2] - b[2] * c[0])
                + a[2] * (b[0] * c[1] - b[1] * c[0])
            )
            if not abs(det) > 1e-12 * max(1e-300, math.prod(math.sqrt(sum(x * x for x in v)) for v in vectors)):
                raise StorageError(
                    f"{path}: NRRD space directions '{f['spacedirections']}' are zero or parallel: the voxel grid is "
                    f"degenerate. {_RESAVE}"
                )
    elif len(kinds) == dim:
        domain = [k in _DOMAIN_KINDS or k in ("none", "???") for k in kinds]
    else:
        domain = [True] * dim
    n_domain = sum(domain)
    shape = "x".join(str(s) for s in sizes)
    if segmentation:
        ok = n_domain == 3 and (dim == 3 or (dim == 4 and not domain[0]))
        expected = "3-D (with, for overlapping segments, a leading list axis of layers)"
    else:
        ok = n_domain == 3 and dim == 3
        expected = "a 3-D volume of one value per voxel"
    if not ok:
        raise StorageError(
            f"{path}: the NRRD file has dimension {dim} (sizes {shape}, {n_domain} spatial axes); a {what} must be "
            f"{expected}. Give the 3-D {what} file (re-save it from 3D Slicer)."
        )
    if "spaceorigin" in f:
        origin = f["spaceorigin"].strip().strip("()")
        if len(_numbers(origin, "space origin", path)) != 3:
            raise StorageError(f"{path}: the NRRD space origin '{f['spaceorigin']}' is not 3 numbers. {_RESAVE}")


def _decompressed_length(f, encoding: str, wanted: int) -> int:
    """Bytes the compressed stream from ``f``'s position decodes to, counted up to ``wanted`` (nothing is kept);
    concatenated gzip members are followed. Raises zlib.error, OSError or EOFError on corrupt data."""

    def new():
        return zlib.decompressobj(32 + zlib.MAX_WBITS) if encoding == "gzip" else bz2.BZ2Decompressor()

    d, total, feed = new(), 0, b""
    while total < wanted:
        if not feed and (encoding == "gzip" or d.needs_input):
            feed = f.read(_CHUNK)
            if not feed:
                break
        out = d.decompress(feed, _CHUNK)
        feed = d.unconsumed_tail if encoding == "gzip" else b""
        total += len(out)
        if d.eof:
            feed = d.unused_data + feed
            if not feed:
                feed = f.read(_CHUNK)
                if not feed:
                    break
            d = new()
    return total


def _check_nrrd_data(h: NrrdHeader, what: str) -> None:
    """The voxel data are at least as long as sizes x type say."""
    f, path = h.fields, h.path
    data_file = f.get("datafile", "")
    if data_file:
        if data_file.split()[0] == "LIST" or len(data_file.split()) > 1:
            raise StorageError(
                f"{path}: the NRRD header spreads its data over several files (data file: {data_file[:60]}), which "
                "is not read here. Re-save it from 3D Slicer as one .nrrd file."
            )
        data_path = Path(data_file) if os.path.isabs(data_file) else path.parent / data_file
        if not data_path.is_file():
            raise StorageError(
                f"{path}: its voxel data are in a separate file, {data_path}, which does not exist. Put that file "
                "beside the header, or re-save the volume from 3D Slicer as one .nrrd file."
            )
        start = 0
    else:
        data_path, start = path, h.data_offset
    try:
        line_skip = int(f.get("lineskip", "0"))
        byte_skip = int(f.get("byteskip", "0"))
    except ValueError:
        raise StorageError(f"{path}: the NRRD line skip / byte skip fields are not whole numbers. {_RESAVE}") from None
    needed = h.data_bytes
    where = f"{data_path} (the data of {path})" if data_path != path else str(path)
    layout = f"sizes {'x'.join(str(s) for s in h.sizes)} of {h.type_name}"
    with open(data_path, "rb") as df:
        df.seek(start)
        for _ in range(max(line_skip, 0)):
            df.readline()
        start = df.tell()
        if h.encoding == "raw":
            have = os.fstat(df.fileno()).st_size - start - max(byte_skip, 0)
        else:
            try:
                have = _decompressed_length(df, h.encoding, needed + max(byte_skip, 0)) - max(byte_skip, 0)
            except (zlib.error, OSError, EOFError) as exc:
                raise StorageError(
                    f"{where}: the {h.encoding}-compressed voxel data are corrupt ({exc}). {_RESAVE}"
                ) from None
    if have < needed:
        shown = "" if h.encoding == "raw" else f" once decompressed ({h.encoding})"
        raise StorageError(
            f"{where}: the file is truncated: it holds {max(have, 0)} bytes of voxel data{shown} but its header "
            f"({layout}) needs {needed}. {_RESAVE}"
        )


def _segmentation_extents(h: NrrdHeader) -> None:
    """Each segment's extent lies within the labelmap (Slicer allocates a segment over its extent)."""
    path, sizes = h.path, h.sizes[-3:]
    try:
        offset = [int(v) for v in h.keys.get("Segmentation_ReferenceImageExtentOffset", "0 0 0").split()][:3]
    except ValueError:
        offset = [0, 0, 0]
    offset += [0] * (3 - len(offset))
    for key, value in h.keys.items():
        if not (key.startswith("Segment") and key.endswith("_Extent")):
            continue
        name = h.keys.get(key[: -len("Extent")] + "Name", key[: -len("_Extent")])
        try:
            e = [int(v) for v in value.split()]
        except ValueError:
            e = []
        if len(e) != 6:
            raise StorageError(f"{path}: segment '{name}' has an unreadable extent '{value[:60]}'. {_RESAVE}")
        if any(e[2 * a + 1] < e[2 * a] for a in range(3)):
            continue  # an empty segment
        inside = any(
            all(base[a] <= e[2 * a] and e[2 * a + 1] <= base[a] + sizes[a] - 1 for a in range(3))
            for base in (offset, (0, 0, 0))
        )
        if not inside:
            raise StorageError(
                f"{path}: segment '{name}' claims the voxel extent {value.strip()}, outside the labelmap's "
                f"{'x'.join(str(s) for s in sizes)} voxels: the file's header is damaged. {_RESAVE}"
            )


def _reference_geometry_voxels(h: NrrdHeader) -> Optional[int]:
    """Voxels of the segmentation's reference geometry (the grid its masks are read on), if it names one."""
    params = h.keys.get("Segmentation_ConversionParameters", "")
    for item in params.split("&"):
        parts = item.split("|")
        if len(parts) >= 2 and parts[0] == "Reference image geometry":
            values = [v for v in parts[1].split(";") if v.strip()]
            try:
                e = [int(float(v)) for v in values[-6:]]
            except ValueError:
                return None
            if len(values) < 22 or len(e) != 6:
                return None
            return math.prod(max(0, e[2 * a + 1] - e[2 * a] + 1) for a in range(3))
    return None


#: NRRD space -> signs that take its axes to RAS
_SPACE_TO_RAS = {
    "ras": (1, 1, 1),
    "right-anterior-superior": (1, 1, 1),
    "las": (-1, 1, 1),
    "left-anterior-superior": (-1, 1, 1),
    "lps": (-1, -1, 1),
    "left-posterior-superior": (-1, -1, 1),
}


def nrrd_grid(path):
    """The voxel grid of a (segmentation) NRRD file as its header states it (space directions, space origin, the
    last three sizes), in RAS, as an ``ImageGeometry``; None when the header does not state it in a patient space
    (RAS, LAS or LPS)."""
    from ..geometry.grid import ImageGeometry

    try:
        h = read_nrrd_header(path)
        f = h.fields
        signs = _SPACE_TO_RAS.get(f.get("space", "").lower())
        if signs is None or "spacedirections" not in f:
            return None
        sizes = _numbers(f.get("sizes", ""), "sizes", h.path, int)[-3:]
        vectors = [d for d in _space_directions(f["spacedirections"], h.path) if d is not None]
        origin = _numbers(f.get("spaceorigin", "(0,0,0)").strip().strip("()"), "space origin", h.path)
    except (OSError, StorageError):
        return None
    if len(sizes) != 3 or len(vectors) != 3 or any(len(v) != 3 for v in vectors) or len(origin) != 3:
        return None
    m = [[0.0] * 4 for _ in range(4)]
    for axis in range(3):  # NRRD axes are i, j, k (fastest first); column ``axis`` of the matrix
        for row in range(3):
            m[row][axis] = signs[row] * vectors[axis][row]
    for row in range(3):
        m[row][3] = signs[row] * origin[row]
    m[3][3] = 1.0
    return ImageGeometry.from_ijk_to_ras(m, tuple(sizes[::-1]))


def check_nrrd(path, what: str = "volume", segmentation: bool = False) -> NrrdHeader:
    """Check a NRRD file's header against its data and the memory (see the module doc); its header."""
    path = Path(path)
    h = read_nrrd_header(path)
    _check_nrrd_geometry(h, what, segmentation)
    factor = SEGMENTATION_MEMORY_FACTOR if segmentation else VOLUME_MEMORY_FACTOR
    layout = f"{'x'.join(str(s) for s in h.sizes)} values of {h.type_bytes} byte(s)"
    _check_memory(path, what, factor * h.data_bytes, layout)  # first: counting a huge stream would take minutes
    _check_nrrd_data(h, what)
    if segmentation:
        _segmentation_extents(h)
        voxels = _reference_geometry_voxels(h)
        segments = sum(1 for k in h.keys if k.startswith("Segment") and k.endswith("_ID"))
        if voxels:
            _check_memory(
                path,
                what,
                voxels * (segments + 1),
                f"{segments} segment mask(s) on its reference grid of {voxels} voxels",
            )
    return h


def _nifti_layout(path: Path) -> Optional[Tuple[int, int]]:
    """(data offset, data bytes) from a NIfTI-1/2 header, or None when it is not one."""
    import gzip
    import struct

    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as f:
            head = f.read(540)
    except (OSError, EOFError, zlib.error):
        return None
    for endian in "<>":
        if len(head) >= 348 and struct.unpack(endian + "i", head[:4])[0] == 348:
            dims = struct.unpack(endian + "8h", head[40:56])
            bitpix = struct.unpack(endian + "h", head[72:74])[0]
            offset = int(struct.unpack(endian + "f", head[108:112])[0])
            break
        if len(head) >= 540 and struct.unpack(endian + "i", head[:4])[0] == 540:
            bitpix = struct.unpack(endian + "h", head[14:16])[0]
            dims = struct.unpack(endian + "8q", head[16:80])
            offset = struct.unpack(endian + "q", head[168:176])[0]
            break
    else:
        return None
    n = dims[0]
    if not 1 <= n <= 7 or bitpix <= 0 or any(d < 1 for d in dims[1 : n + 1]):
        return None
    return offset, math.prod(dims[1 : n + 1]) * bitpix // 8


def _check_nifti_length(path: Path, what: str) -> None:
    layout = _nifti_layout(path)
    if layout is None:
        return  # SimpleITK read the header; leave the rest to it
    offset, needed = layout
    if path.name.lower().endswith(".gz"):
        try:
            with open(path, "rb") as f:
                have = _decompressed_length(f, "gzip", offset + needed)
        except (zlib.error, OSError, EOFError) as exc:
            raise StorageError(f"{path}: the gzip-compressed {what} data are corrupt ({exc}). {_RESAVE}") from None
    else:
        have = path.stat().st_size
    if have < offset + needed:
        raise StorageError(
            f"{path}: the file is truncated: its NIfTI header says the voxel data run to byte {offset + needed}, but "
            f"it holds {have} bytes. {_RESAVE}"
        )


def _check_with_simpleitk(path: Path, what: str) -> None:
    import locale

    try:
        import SimpleITK as sitk
    except ImportError:  # slicer-core reads the file unchecked; NRRD, the format Slicer writes, is checked above
        return
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    saved = locale.setlocale(locale.LC_ALL, None)  # GDCM (a DICOM file) may switch the process locale
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        detail = next((ln.strip() for ln in str(exc).splitlines() if "rror" in ln), "")
        raise StorageError(
            f"{path} is not a readable {what} file (NRRD, NIfTI, MetaImage...): its header cannot be read"
            f"{' (' + detail[:200] + ')' if detail else ''}. Give the {what} as a .nrrd saved by 3D Slicer."
        ) from None
    finally:
        locale.setlocale(locale.LC_ALL, saved)
    size, components = tuple(reader.GetSize()), reader.GetNumberOfComponents()
    if len(size) != 3 or components != 1:
        raise StorageError(
            f"{path}: a {len(size)}-D image ({'x'.join(str(s) for s in size)}) with {components} value(s) per voxel; "
            f"a {what} must be a 3-D volume of one value per voxel. Give the 3-D {what} file."
        )
    bytes_per = {
        getattr(sitk, name, None): n
        for name, n in (
            ("sitkUInt8", 1),
            ("sitkInt8", 1),
            ("sitkUInt16", 2),
            ("sitkInt16", 2),
            ("sitkUInt32", 4),
            ("sitkInt32", 4),
            ("sitkFloat32", 4),
            ("sitkUInt64", 8),
            ("sitkInt64", 8),
            ("sitkFloat64", 8),
        )
    }.get(reader.GetPixelID(), 8)
    _check_memory(
        path,
        what,
        VOLUME_MEMORY_FACTOR * math.prod(size) * bytes_per,
        f"{'x'.join(map(str, size))} values of {bytes_per} byte(s)",
    )
    if path.name.lower().endswith((".nii", ".nii.gz")):
        _check_nifti_length(path, what)


def check_volume_file(path, what: str = "volume") -> None:
    """Check a volume file before slicer-core reads it (module doc); StorageError naming what is wrong."""
    path = Path(path)
    _check_file(path, _title(what))
    if is_nrrd(path):
        if read_nrrd_header(path).is_segmentation:  # said first: its 4-D layers are not the problem
            raise StorageError(
                f"{path} is a segmentation (.seg.nrrd, with segments), not a {what}. Give it as --segmentation, and a "
                f"{what} file here."
            )
        check_nrrd(path, what)
        return
    _check_with_simpleitk(path, what)


def check_segmentation_file(path, what: str = "segmentation") -> NrrdHeader:
    """Check a .seg.nrrd before slicer-core reads it (module doc); its header."""
    path = Path(path)
    _check_file(path, _title(what))
    if not is_nrrd(path):
        raise StorageError(
            f"{path} is not a NRRD file, so not a segmentation (.seg.nrrd, as 3D Slicer saves one). Give the "
            ".seg.nrrd file."
        )
    h = check_nrrd(path, what, segmentation=True)
    if not h.is_segmentation:
        kind = "floating-point (a dose or image?)" if h.type_name.lower() in NRRD_FLOAT_TYPES else h.type_name
        raise StorageError(
            f"{path} is a plain {kind} volume without segment information, not a segmentation. Give the structures "
            "as a .seg.nrrd saved by 3D Slicer (a dose goes to --dose, a CT to --ct)."
        )
    return h


#: Extensions of ITK transform files a linear transform is read from.
TRANSFORM_EXTENSIONS = (".h5", ".hdf5", ".tfm", ".txt", ".mat")


def check_transform_file(path, what: str = "transform") -> None:
    path = Path(path)
    _check_file(path, _title(what))
    if is_nrrd(path) or not path.name.lower().endswith(TRANSFORM_EXTENSIONS):
        kind = "an image volume (NRRD)" if is_nrrd(path) else f"a '{path.suffix or path.name}' file"
        raise StorageError(
            f"{path} is {kind}, not a linear transform file: the {what} must be an ITK transform file (.h5, .tfm "
            "or .txt, as 3D Slicer saves a linear transform). Give that file (or register the MR instead)."
        )


# -- reading and writing through MRML storage nodes ----------------------------------------------------


def _write(scene, node, storage, path) -> str:
    path = str(Path(path).resolve())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    scene.AddNode(storage)
    storage.SetFileName(path)
    if not storage.WriteData(node):
        scene.RemoveNode(storage)
        raise StorageError(f"Could not write {node.GetName()} to {path}.")
    node.SetAndObserveStorageNodeID(storage.GetID())
    return path


def source_file(node) -> str:
    """The file a node was read from (its storage node's file name), or ""."""
    storage = node.GetStorageNode() if node is not None and hasattr(node, "GetStorageNode") else None
    return str(storage.GetFileName() or "") if storage is not None else ""


def save_volume(scene, node, path) -> str:
    """Write a volume (scalar or labelmap) to ``.nrrd`` (or another ITK format by extension)."""
    import slicer

    return _write(scene, node, slicer.vtkMRMLVolumeArchetypeStorageNode(), path)


def _read(scene, node, storage, path, name: str, what: str, usable, unreadable: str, check=None):
    """Read ``path`` into the new ``node`` through ``storage`` after ``check(path)`` (the file checks that keep
    slicer-core from aborting); on failure the scene is left as it was."""
    path = str(Path(path).resolve())
    if not os.path.isfile(path):
        raise StorageError(f"{what} file {path} does not exist.")
    if check is not None:
        check(path)
    node.SetName(name or Path(path).name.split(".")[0])
    scene.AddNode(node)
    scene.AddNode(storage)
    storage.SetFileName(path)
    node.SetAndObserveStorageNodeID(storage.GetID())
    if not storage.ReadData(node) or not usable(node):
        scene.RemoveNode(node)
        scene.RemoveNode(storage)
        raise StorageError(f"{path} {unreadable}")
    return node


def load_volume(scene, path, name: str = "", labelmap: bool = False):
    """A scalar (or labelmap) volume node read from ``path``; the file is checked first (``check_volume_file``),
    and a .seg.nrrd is refused. ``name`` ("CT", "Dose"...) also names the volume in messages."""
    import slicer

    what = f"{name} volume" if name else "volume"
    node = slicer.vtkMRMLLabelMapVolumeNode() if labelmap else slicer.vtkMRMLScalarVolumeNode()
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    _read(
        scene,
        node,
        storage,
        path,
        name,
        "Volume",
        lambda n: n.GetImageData() is not None,
        "is not a readable volume file (NRRD, NIfTI, MHA...).",
        lambda p: check_volume_file(p, what),
    )
    node.CreateDefaultDisplayNodes()
    return node


def save_transform(scene, node, path) -> str:
    """Write a transform to ``.h5``, ``.tfm`` or ``.txt`` (ITK transform files, as Slicer saves them)."""
    import slicer

    return _write(scene, node, slicer.vtkMRMLTransformStorageNode(), path)


def load_transform(scene, path, name: str = ""):
    """A linear transform node read from an ITK transform file (``.h5``, ``.tfm``, ``.txt``)."""
    import slicer

    return _read(
        scene,
        slicer.vtkMRMLLinearTransformNode(),
        slicer.vtkMRMLTransformStorageNode(),
        path,
        name,
        "Transform",
        lambda n: bool(n.IsLinear()),
        "is not a readable linear transform file (.h5, .tfm or .txt, as Slicer saves them): it cannot be read, or "
        "holds a non-linear (deformable) transform.",
        lambda p: check_transform_file(p, f"{name} transform" if name else "transform"),
    )


def save_segmentation(scene, node, path) -> str:
    """Write a segmentation to ``.seg.nrrd`` (Slicer's format: segments, names, colours, tags, geometry)."""
    import slicer

    if not str(path).endswith(".seg.nrrd"):
        raise StorageError(f"Segmentation file name must end with .seg.nrrd; got {path}.")
    return _write(scene, node, slicer.vtkMRMLSegmentationStorageNode(), path)


def load_segmentation(scene, path, name: str = ""):
    import slicer

    node = _read(
        scene,
        slicer.vtkMRMLSegmentationNode(),
        slicer.vtkMRMLSegmentationStorageNode(),
        path,
        name,
        "Segmentation",
        lambda n: n.GetSegmentation().GetNumberOfSegments() > 0,
        "is not a readable segmentation (.seg.nrrd) or holds no segments.",
        check_segmentation_file,
    )
    node.CreateDefaultDisplayNodes()
    return node


def save_scene_mrb(scene, path) -> str:
    """Write the whole scene with its data as a Slicer ``.mrb`` bundle that desktop Slicer opens."""
    path = str(Path(path).resolve())
    if not path.endswith(".mrb"):
        raise StorageError(f"Scene bundle name must end with .mrb; got {path}.")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    from vtkmodules.vtkCommonCore import vtkOutputWindow

    window = vtkOutputWindow.GetInstance()
    mode = window.GetDisplayMode()
    window.SetDisplayModeToNever()  # slicer-core 5.11 logs an Info line per zipped file
    try:
        ok = scene.WriteToMRB(path)
    finally:
        window.SetDisplayMode(mode)
    if not ok:
        raise StorageError(f"Could not write the scene to {path}.")
    return path


def load_scene_mrb(ctx, path) -> None:
    """Read a ``.mrb`` into the standalone scene ``ctx`` (see ``scene.new_scene``)."""
    path = str(Path(path).resolve())
    if not os.path.isfile(path):
        raise StorageError(f"Scene file {path} does not exist.")
    ctx.enable_mrb_reading()
    if not ctx.scene.ReadFromMRB(path):
        raise StorageError(f"{path} is not a readable Slicer scene bundle (.mrb).")
