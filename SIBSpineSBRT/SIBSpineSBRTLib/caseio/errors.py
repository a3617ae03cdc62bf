"""Named errors and warnings of DICOM-RT input and output.

Every error is a ``ValueError`` whose message names the file (or files) at fault and says how to fix the
export. Errors about a dose also derive from ``dose.grid.DoseError``, so code that already handles dose
problems handles them too. Messages never contain patient names or IDs.
"""

from __future__ import annotations

from ..dose.grid import DoseError
from ..warnings import SIBSpineWarning


class CaseIOError(ValueError):
    """Base class: a case folder or a DICOM file that cannot be used as it is."""


class CorruptDicomError(CaseIOError):
    """A file that looks like DICOM (preamble, .dcm name) but cannot be read completely."""


class SeriesError(CaseIOError):
    """Base class: an image series (CT, MR) whose slices do not form one regular volume."""


class DuplicateSliceError(SeriesError):
    """Two files of one series hold a slice at the same position."""


class MissingSliceError(SeriesError):
    """A gap in a series: slice positions skip one or more slices, or are irregular."""


class MixedSeriesError(SeriesError):
    """Files that share a series UID but cannot belong together (size, orientation, frame of reference...)."""


class SeriesGeometryError(SeriesError):
    """A series whose header places its images elsewhere than the structures drawn on it (an orientation or
    position rewritten in the header only, e.g. a flipped Image Orientation (Patient))."""


class UnsupportedSeriesError(SeriesError):
    """A series this reader does not handle (gantry tilt, enhanced multi-frame images, colour...)."""


class AmbiguousSeriesError(CaseIOError):
    """The folder holds several candidates (planning CTs, structure sets, plan doses) and nothing tells which."""


class MissingSeriesError(CaseIOError):
    """The folder lacks something the case needs (the planning CT, the series a structure set references)."""


class FrameOfReferenceError(CaseIOError):
    """A dose, structure set or plan that belongs to another frame of reference than the planning CT."""


class RTStructError(CaseIOError):
    """An RTSTRUCT whose contours cannot be read or placed on the planning CT."""


class RTDoseError(CaseIOError, DoseError):
    """An RTDOSE whose grid or values cannot be read as a physical dose."""


class DoseUnitsMissingError(RTDoseError):
    """An RTDOSE without DoseUnits: the dose values cannot be interpreted."""


class RTPlanError(CaseIOError):
    """An RTPLAN whose prescription cannot be read."""


class ExportError(CaseIOError):
    """Structures that cannot be written as an RTSTRUCT for the planning CT."""


class DicomWarning(SIBSpineWarning):
    """Something in the case folder a user must know about (a corrupt file left out, a clipped contour...)."""
