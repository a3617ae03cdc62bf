"""Cases in and out: DICOM-RT folders into MRML, planning volumes back out as RTSTRUCT or .seg.nrrd.

* ``dicom_scan``: walk a folder, classify files, name corrupt ones;
* ``dicom_image``: CT/MR series to arrays on an ImageGeometry (RAS), with slice checks;
* ``rtdose``, ``rtstruct_read``, ``rtplan``: the RT objects (pydicom);
* ``rtstruct_write``: masks to an RTSTRUCT on the planning CT's slices (contourpy marching squares, pydicom);
* ``case_loader``: a folder into MRML nodes (slicer-core or desktop Slicer scene) as a ``DicomCase``;
* ``slicer_dicom``: the same through Slicer's DICOM database and SlicerRT (desktop Slicer only);
* ``export``: planning volumes to .dcm / .seg.nrrd, and the ``sibspine volumes --dicom`` step.

Nothing here imports pydicom, SimpleITK, contourpy, slicer or Qt at import time. Errors are in ``errors``
(all ``ValueError``s naming the file and the fix).
"""

from .errors import (  # noqa: F401
    AmbiguousSeriesError,
    CaseIOError,
    CorruptDicomError,
    DicomWarning,
    DoseUnitsMissingError,
    DuplicateSliceError,
    ExportError,
    FrameOfReferenceError,
    MissingSeriesError,
    MissingSliceError,
    MixedSeriesError,
    RTDoseError,
    RTPlanError,
    RTStructError,
    SeriesError,
    UnsupportedSeriesError,
)
