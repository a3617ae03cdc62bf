"""Reviewing a DICOM-RT case already loaded into MRML (``caseio``): the same steps for ``sibspine review
--dicom`` and the headless Slicer regression run."""

from __future__ import annotations

from typing import Mapping, Optional, Tuple

import numpy as np

from ..caseio.case_loader import FRAME_ATTRIBUTE
from ..protocol.model import Protocol, ProtocolError, level_from_text
from .pipeline import ReviewResult, review_case


def case_level(case, level: Optional[str]) -> str:
    """The level given, else one written explicitly in the RTPLAN label ("level T8"); otherwise an error."""
    if level:
        return level
    label = case.prescription.plan_label if case.prescription is not None else ""
    found = level_from_text(label)
    if found is None:
        raise ProtocolError(
            "The vertebral level of the target is not given and the RTPLAN label does not state it "
            '(as "level T8"): pass --level.'
        )
    return found


def mr_for_fusion(case) -> Tuple[Optional[object], Optional[np.ndarray]]:
    """The first MR that shares the planning CT's frame of reference, with its MR->CT transform (identity);
    (None, None) when no MR is registered to the CT."""
    ct_frame = case.ct.GetAttribute(FRAME_ATTRIBUTE)
    for node in case.mr:
        if ct_frame and node.GetAttribute(FRAME_ATTRIBUTE) == ct_frame:
            return node, np.eye(4)
    return None, None


def with_plan_prescription(data, case):
    """``data`` (a CaseInput) with the fractionation and prescription the case's RTPLAN states, so that a plan
    that is not the protocol's cannot pass (``pipeline._plan_problems``); unchanged without an RTPLAN."""
    prescription = getattr(case, "prescription", None) if case is not None else None
    if prescription is not None:
        data.plan_fractions = prescription.fractions
        data.plan_dose_gy = prescription.total_dose_gy
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
    result = review_case(data, protocol, role_overrides, **options)
    notes = list(case.messages)
    result.messages = notes + [m for m in result.messages if m not in notes]
    return result
