"""What a front end may offer: which actions are possible now, and what is missing for the others."""

from __future__ import annotations

from typing import List, Optional

from ..protocol.model import LEVELS


def evaluate_missing(segmentation_present: bool, dose_present: bool, level: Optional[str]) -> List[str]:
    """Inputs missing before a plan can be evaluated (empty when it can), as sentences for a tooltip."""
    missing = []
    if not segmentation_present:
        missing.append("Choose the segmentation holding GTV, CTV, cord, thecal sac and canal.")
    if not dose_present:
        missing.append("Choose the plan's dose volume.")
    if not level or str(level).upper() not in LEVELS:
        missing.append("Choose the vertebral level of the target (C1-S5).")
    return missing
