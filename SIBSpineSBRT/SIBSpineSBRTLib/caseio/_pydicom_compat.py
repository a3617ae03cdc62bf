"""The few pydicom calls that differ between pydicom 2.4 (desktop Slicer 5.6/5.8, Python 3.9) and 3.0
(Slicer 5.12, the project's Python 3.11 venv), feature-detected here and nowhere else.

* Writing a file in the DICOM File Format (128-byte preamble, ``DICM``, complete File Meta Information):
  3.0 ``save_as(path, enforce_file_format=True)``, which encodes the dataset as its Transfer Syntax UID
  says; 2.x ``save_as(path, write_like_original=False)``, which encodes it as ``is_little_endian`` and
  ``is_implicit_VR`` say (deprecated in 3.0), so they are set from the Transfer Syntax UID first.
* Decoded pixel values: 3.0's ``pixel_array`` ignores the bits above Bits Stored (masks unsigned values,
  sign-extends signed ones); 2.x's returns them as stored, so ``pixel_array`` here does that for 2.x.
* The modality LUT (Rescale Slope/Intercept): ``pydicom.pixels.apply_modality_lut`` in 3.0,
  ``pydicom.pixel_data_handlers.util.apply_modality_lut`` in 2.x (deprecated in 3.0).
* The encoding a dataset was read with: ``original_encoding`` in 3.0, ``read_implicit_vr`` /
  ``read_little_endian`` in 2.x.

Everything else the library uses (``dcmread`` with ``force``, ``defer_size``, ``stop_before_pixels`` and
``specific_tags``; ``FileMetaDataset``; ``generate_uid``; ``UID.is_compressed``)
is common to both. pydicom is imported when a function is called, never at import time.
"""

from __future__ import annotations

import inspect
from functools import cache
from typing import Optional


@cache
def _save_as_enforces_file_format() -> bool:
    """True for pydicom >= 3.0 (``Dataset.save_as`` takes ``enforce_file_format``)."""
    from pydicom.dataset import Dataset

    return "enforce_file_format" in inspect.signature(Dataset.save_as).parameters


def write_file(ds, path) -> None:
    """Write ``ds`` to ``path`` in the DICOM File Format, encoded as ``ds.file_meta.TransferSyntaxUID``
    says (with 2.x as with 3.0); missing required File Meta elements are added."""
    if _save_as_enforces_file_format():
        ds.save_as(path, enforce_file_format=True)
        return
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is not None and not ts.is_private:
        # pydicom 2.x encodes by these two flags, not by the Transfer Syntax UID; a dataset read from a file
        # keeps the flags of the file it came from
        ds.is_little_endian = ts.is_little_endian
        ds.is_implicit_VR = ts.is_implicit_VR
    ds.save_as(path, write_like_original=False)


@cache
def _has_pixels_package() -> bool:
    """True for pydicom >= 3.0 (``pydicom.pixels``: the pixel decoders and LUT functions)."""
    import importlib.util

    return importlib.util.find_spec("pydicom.pixels") is not None


def pixel_array(ds):
    """The stored pixel values, with the bits above Bits Stored ignored: unsigned values masked, signed ones
    sign-extended from bit Bits Stored - 1. pydicom 3's ``pixel_array`` does this itself; pydicom 2.x returns
    those bits as stored, so a CT stored as 12-bit signed (Bits Allocated 16) whose high bits are clear, or
    hold overlay bits, would otherwise give wrong values (-2000 HU read as 2096)."""
    arr = ds.pixel_array
    if _has_pixels_package():
        return arr
    try:
        stored = int(ds.BitsStored)
    except (AttributeError, TypeError, ValueError):
        return arr
    kind, bits = arr.dtype.kind, arr.dtype.itemsize * 8
    if kind not in "ui" or not 0 < stored < bits:
        return arr
    if kind == "u":
        return arr & arr.dtype.type((1 << stored) - 1)
    shift = bits - stored
    return (arr << shift) >> shift  # arithmetic shift: sign extension


def apply_modality_lut(arr, ds):
    """Stored pixel values to modality values (e.g. HU) by the dataset's Modality LUT or Rescale Slope/Intercept."""
    try:
        from pydicom.pixels import apply_modality_lut as apply
    except ImportError:  # pydicom < 3.0
        from pydicom.pixel_data_handlers.util import apply_modality_lut as apply
    return apply(arr, ds)


def read_as_implicit_vr(ds) -> Optional[bool]:
    """Whether ``ds`` was decoded from Implicit VR (None for a dataset created in memory)."""
    if hasattr(type(ds), "original_encoding"):  # pydicom >= 3.0
        return ds.original_encoding[0]
    return getattr(ds, "read_implicit_vr", None)
