"""Reviewing a DICOM-RT case already loaded into MRML (``caseio``): the same steps for ``sibspine review
--dicom`` and the headless Slicer regression run."""

from __future__ import annotations

from typing import Mapping, Optional, Tuple

import numpy as np

from ..caseio.case_loader import FRAME_ATTRIBUTE
from ..dose.grid import DoseError
from ..protocol.model import Protocol, ProtocolError, level_from_text, normalise_level
from .pipeline import ReviewResult, review_case
from .planning_volumes import contour_structures


def case_level(case, level: Optional[str]) -> str:
    """The level given, else one written explicitly in the RTPLAN label ("level T8"); otherwise an error."""
    label = case.prescription.plan_label if case.prescription is not None else ""
    found = level_from_text(label)
    if level:
        if found is not None and found != normalise_level(level):
            case.messages.append(
                f"The RTPLAN label ({label!r}) states level {found}, but level {normalise_level(level)} was given; "
                f"the review uses {normalise_level(level)}. Check which is the target's level."
            )
        return level
    if found is None:
        if case.prescription is None:
            said = "the case has no RTPLAN whose label could state it"
        elif label:
            said = f"the RTPLAN label ({label!r}) does not state it"
        else:
            said = "the RTPLAN has no label to state it"
        raise ProtocolError(
            f'The vertebral level of the target is not given and {said} (as "level T8", a level C1-S5): pass --level.'
        )
    return found


def mr_for_fusion(case) -> Tuple[Optional[object], Optional[np.ndarray]]:
    """The first MR that shares the planning CT's frame of reference, with its MR->CT transform (identity); else
    the first MR whose frame a rigid REG of the folder relates to the CT's, with the REG's transform (4x4 RAS,
    MR-frame points to CT-frame points; a message says so); (None, None) when no MR is registered to the CT."""
    from ..caseio.case_loader import registration_to_ct
    from ..caseio.reg import lps_to_ras

    ct_frame = case.ct.GetAttribute(FRAME_ATTRIBUTE)
    for node in case.mr:
        if ct_frame and node.GetAttribute(FRAME_ATTRIBUTE) == ct_frame:
            return node, np.eye(4)
    for node in case.mr:
        frame = node.GetAttribute(FRAME_ATTRIBUTE)
        reg = registration_to_ct(getattr(case, "registrations", None) or [], frame, ct_frame) if ct_frame else None
        if reg is not None:
            note = (
                f"MR series {node.GetName()} is on another frame of reference than the planning CT; it is placed on "
                f"the CT through the DICOM registration {reg.name} (rigid)."
            )
            if note not in case.messages:
                case.messages.append(note)
            return node, lps_to_ras(reg.transform(frame, ct_frame))
    return None, None


def with_plan_prescription(data, case):
    """``data`` (a CaseInput) with the fractionation and prescription the case's RTPLAN states, so that a plan
    that is not the protocol's cannot pass (``pipeline._plan_problems``); unchanged without an RTPLAN."""
    prescription = getattr(case, "prescription", None) if case is not None else None
    if prescription is not None:
        data.plan_fractions = prescription.fractions
        data.plan_dose_gy = prescription.total_dose_gy
    problem = getattr(case, "plan_problem", "") if case is not None else ""
    if problem:
        data.plan_problems = [problem]
    return data


def review_dicom_case(
    case,
    protocol: Protocol,
    level: Optional[str] = None,
    name: str = "",
    role_overrides: Optional[Mapping[str, str]] = None,
    **options,
) -> ReviewResult:
    """Review a loaded case; the RTPLAN's fractionation and prescription, when they differ from the protocol's,
    stop a pass (``pipeline._plan_problems``)."""
    data = with_plan_prescription(case.case_input(case_level(case, level), name), case)
    # one geometry per source: the RTSTRUCT's ROIs are reviewed on their contours, as ``sibspine dvh --rtstruct``
    data.contours, contour_notes = contour_structures(getattr(case, "contours", None) or {}, set(data.masks))
    case.messages.extend(m for m in contour_notes if m not in case.messages)
    if getattr(case, "prescription", None) is None:
        case.messages.append(
            f"No RTPLAN was read, so the plan's fractionation and prescription were not checked against protocol "
            f"{protocol.id} ({protocol.fractions} fractions, {protocol.prescription_gy:g} Gy): check them in the "
            "planning system."
        )
    try:
        result = review_case(data, protocol, role_overrides, **options)
    except DoseError as exc:  # e.g. a probable unit error: name the file it came from
        path = getattr(getattr(case, "rtdose", None), "path", None)
        if path is None or str(path) in str(exc):
            raise
        raise DoseError(f"{path}: {exc}") from None
    from ..caseio.identity import case_identity, dose_grid_warnings

    source = "given" if level else "RTPLAN label"
    result.identity = case_identity(case, level_source=f"{result.level} ({source})")
    mr_for_fusion(case)  # says how an MR on another frame is placed (through a REG) among the case's messages
    notes = list(case.messages) + dose_grid_warnings(result.identity)
    result.messages = notes + [m for m in result.messages if m not in notes]
    return result
