"""What a front end may offer now, and what is missing for the rest: the panel's buttons are enabled,
or disabled with these sentences as their tooltip. No Qt here; the Slicer widget and the web app bind to it."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from ..protocol.model import ProtocolError, normalise_level

REGISTER, BUILD, EVALUATE, NORMALISE, REPORT, RTSTRUCT = (
    "register",
    "build_volumes",
    "evaluate",
    "normalise",
    "export_report",
    "export_rtstruct",
)

# Python packages an action needs that desktop Slicer does not bundle: (import name, pinned pip requirement).
# The pins install on Python 3.9 (Slicer 5.6/5.8) and 3.12 (Slicer 5.10+). shapely (GEOS) grows and subtracts
# planning volumes on planar contours (``geometry.contour_margins``); without it contour sources are rasterised
# and grown by the cube rule, and the recipes say so.
SHAPELY = ("shapely", "shapely==2.0.7")
PACKAGES: Dict[str, tuple] = {
    BUILD: (SHAPELY,),
    EVALUATE: (SHAPELY,),
    REPORT: (("matplotlib", "matplotlib==3.9.4"), ("fpdf", "fpdf2==2.8.4")),
    RTSTRUCT: (("contourpy", "contourpy==1.3.0"), SHAPELY),
}


@dataclass
class PanelState:
    """What the user has chosen and what has been computed so far."""

    ct: bool = False
    mr: bool = False
    segmentation: bool = False
    dose: bool = False
    level: Optional[str] = None
    evaluated: bool = False  # a review result exists for the current inputs
    prescription_metric_known: bool = False  # the review could compute the prescription metric
    volumes_built: bool = False
    ct_from_dicom: bool = False  # the CT carries DICOM UIDs, so an RTSTRUCT can reference it


def _level_ok(level: Optional[str]) -> bool:
    if not level:
        return False
    try:
        normalise_level(level)
    except ProtocolError:
        return False
    return True


def missing_for(state: PanelState) -> Dict[str, List[str]]:
    """For each action, the sentences saying what is missing (an empty list: the action is possible)."""
    seg = [] if state.segmentation else ["Choose the segmentation (GTV, CTV, cord, thecal sac, canal)."]
    level = [] if _level_ok(state.level) else ["Choose the vertebral level of the target (C1-S5)."]
    dose = [] if state.dose else ["Choose the plan's dose volume."]
    ct = [] if state.ct else ["Choose the planning CT."]
    out = {
        REGISTER: ct + ([] if state.mr else ["Choose the MR to register to the CT."]),
        BUILD: seg + level,
        EVALUATE: seg + dose + level,
        NORMALISE: []
        if state.evaluated and state.prescription_metric_known
        else ["Evaluate the plan first; the prescription structure (PTV_Eval) must be evaluable."],
        REPORT: [] if state.evaluated else ["Evaluate the plan first."],
        RTSTRUCT: ([] if state.volumes_built else ["Build the planning volumes first."])
        + ([] if state.ct_from_dicom else ["The CT must come from DICOM so the RTSTRUCT can reference its series."]),
    }
    return out


def evaluate_missing(segmentation_present: bool, dose_present: bool, level: Optional[str]) -> List[str]:
    """Inputs missing before a plan can be evaluated (empty when it can)."""
    return missing_for(PanelState(segmentation=segmentation_present, dose=dose_present, level=level))[EVALUATE]


def missing_packages(action: str, find_spec: Callable = importlib.util.find_spec) -> List[str]:
    """Pinned pip requirements of the packages ``action`` needs that this Python cannot import (the Slicer
    module offers to install them with ``slicer.util.pip_install``)."""
    return [req for module, req in PACKAGES.get(action, ()) if find_spec(module) is None]


def role_table_key(segmentation, protocol: str, overrides: Dict[str, str]) -> Tuple:
    """What the panel's role table shows depends on: the segmentation node (and its segments), the protocol and
    the overrides. The table is rebuilt when this key changes."""
    names: Tuple[str, ...] = ()
    node_id = None
    if segmentation is not None:
        node_id = segmentation.GetID()
        seg = segmentation.GetSegmentation()
        names = tuple(seg.GetNthSegment(i).GetName() for i in range(seg.GetNumberOfSegments()))
    return node_id, names, protocol, tuple(sorted(overrides.items()))
