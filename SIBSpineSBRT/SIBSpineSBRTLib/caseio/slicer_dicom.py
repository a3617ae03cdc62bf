"""The same case through desktop Slicer's DICOM database and SlicerRT's DICOM-RT plugin.

Only for desktop Slicer with SlicerRT (also headless: ``Slicer --no-main-window --python-script run.py``,
where the DICOM module has already set up ``slicer.dicomDatabase``). DICOMLib is imported inside the
functions, so this module imports anywhere. Every decision is in ``caseio.slicer_case`` (tested with
slicer-core); this module only drives Slicer:

1. the folder is scanned and checked with the same pydicom code as outside Slicer (choice of CT, structure
   set, dose and plan; frame-of-reference checks; named errors; dose problems recorded, not raised, by
   default) -- ``slicer_case.choose_case_objects``;
2. it is imported into a temporary DICOM database (``importDicom``; a failed import is an error), which
   stands in for the application's database only while the case loads; the database that was open is
   reopened and the temporary folder removed afterwards;
3. each chosen object is loaded with one plugin (``slicer_case.load_requests``): the CT and MR series by
   Slicer's scalar-volume plugin, the structure set, dose and plan each as its own file by SlicerRT's RT
   plugin -- through ``getLoadablesFromFileLists(fileLists, pluginClassNames)``,
   ``selectHighestConfidenceLoadables`` and ``loadLoadables``, the three steps of ``loadSeriesByUID``
   (DICOMUtils.py, Slicer 5.6.2 L161-186 to main L192-224; ``pluginClassNames`` exists since 5.6), so the
   global plugin table ``slicer.modules.dicomPlugins`` is never changed;
4. the nodes each load added become the ``DicomCase`` that ``case_loader.load_dicom_case`` returns
   (``slicer_case.case_from_loaded_nodes``): the CT, MR list, a segmentation whose source is a binary
   labelmap on the CT grid, the dose node (SlicerRT has marked it and set its unit), the raw contours and the
   prescription.

Headless use: ``Slicer --no-main-window --python-script Testing/regression_review.py -- --case CASE_DIR --out
OUT`` (the same review, metrics.json and exit code as ``sibspine review --dicom``).
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from typing import List, Optional

from .case_loader import DicomCase
from .errors import CaseIOError, MissingSeriesError
from .slicer_case import RT_PLUGIN, LoadRequest, case_from_loaded_nodes, choose_case_objects, load_requests


@contextmanager
def _temporary_database():
    """A new DICOM database in a temporary folder, as ``slicer.dicomDatabase`` while the block runs.

    ``DICOMUtils.TemporaryDICOMDatabase`` (Slicer 5.6.2 L428-444, main L471-487) reopens the application's
    database only when the settings name one (``closeTemporaryDatabase``) and leaves its folder behind; here
    the database that was open is reopened in any case, and the folder is removed."""
    import slicer
    from DICOMLib import DICOMUtils

    previous = slicer.dicomDatabase.databaseFilename if slicer.dicomDatabase.isOpen else ""
    folder = tempfile.mkdtemp(prefix="SIBSpineSBRT-DICOM-")
    try:
        with DICOMUtils.TemporaryDICOMDatabase(folder) as db:  # an absolute folder is used as given
            yield db
    finally:
        app_db = slicer.dicomDatabase
        if previous and not (app_db.isOpen and app_db.databaseFilename == previous):
            app_db.openDatabase(previous)
        shutil.rmtree(folder, ignore_errors=True)


def _load(scene, request: LoadRequest, messages: List[str]) -> list:
    """The nodes one request added (``loadLoadables`` returns the IDs of every node added but storage and display
    nodes, DICOMUtils.py 5.6.2 L782-841)."""
    from DICOMLib import DICOMUtils

    notes: List[str] = []
    loadables, _ = DICOMUtils.getLoadablesFromFileLists([list(request.files)], [request.plugin], messages=notes)
    DICOMUtils.selectHighestConfidenceLoadables(loadables)
    ids = DICOMUtils.loadLoadables(loadables, messages=notes) or []
    messages.extend(notes)
    return [scene.GetNodeByID(i) for i in ids]


def load_case_with_slicer_dicom(
    folder,
    ct_series_uid: Optional[str] = None,
    structure_set_uid: Optional[str] = None,
    dose_uid: Optional[str] = None,
    on_dose_error: str = "record",
) -> DicomCase:
    """Load a DICOM-RT case folder in desktop Slicer through its DICOM database and SlicerRT.

    Same checks, choices and errors as ``case_loader.load_dicom_case``; nodes land in ``slicer.mrmlScene``. A dose
    that cannot be used is recorded (``DicomCase.dose_problem``) unless ``on_dose_error="raise"``. Raises
    MissingSeriesError when SlicerRT is not installed (no RT plugin) or a chosen object did not load.
    """
    import slicer
    from DICOMLib import DICOMUtils

    if RT_PLUGIN not in getattr(slicer.modules, "dicomPlugins", {}):
        raise MissingSeriesError(
            "SlicerRT's DICOM-RT plugin is not loaded: install SlicerRT from the Extensions Manager (or add its module "
            "paths with --additional-module-paths when running with --testing)."
        )
    selection = choose_case_objects(folder, ct_series_uid, structure_set_uid, dose_uid, on_dose_error)
    scene = slicer.mrmlScene
    loaded = []
    with _temporary_database() as db:
        if not DICOMUtils.importDicom(str(folder), db):  # returns False on failure, never raises (5.6.2 L447-462)
            raise CaseIOError(f"Slicer could not import {folder} into its DICOM database; see the Python console.")
        for request in load_requests(selection, db.filesForSeries, db.fileForInstance):
            loaded.append((request, _load(scene, request, selection.messages)))
    return case_from_loaded_nodes(scene, selection, loaded)
