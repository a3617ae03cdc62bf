"""What-if: the plan rescaled so that the prescription metric equals the prescription, re-evaluated.

The original dose is never changed: the rescaled dose is a new DoseGrid (and, in MRML, a new node).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..dose.grid import DoseError, DoseGrid
from .pipeline import CaseInput, ReviewResult, review_case


@dataclass
class WhatIf:
    factor: float
    dose: DoseGrid
    result: ReviewResult
    before_gy: float  # prescription metric before rescaling


def prescription_value(result: ReviewResult) -> Optional[float]:
    """The prescription metric (e.g. PTV_Eval D90%) as reviewed, or None when it could not be computed."""
    p = result.protocol
    dvh = result.dvhs.get(p.prescription_structure)
    return None if dvh is None else dvh.metric(p.prescription_metric)


def normalise_to_prescription(result: ReviewResult, **review_options) -> WhatIf:
    """Scale the whole dose so that the prescription metric equals the prescription dose, and review again
    (``review_options``: the role overrides and margins the first review used)."""
    p = result.protocol
    case = result.inputs
    if case.dose is None:
        raise DoseError("Normalisation needs a dose volume.")
    current = prescription_value(result)
    if current is None or current <= 0:
        raise DoseError(
            f"Cannot normalise: {p.prescription_structure} {p.prescription_metric} is not available "
            f"({result.volume_problems.get(p.prescription_structure, 'no dose in the structure')})."
        )
    factor = p.prescription_gy / current
    dose = case.dose.scaled(factor, f"{case.dose.name} normalised x{factor:.4f}")
    rescaled = CaseInput(case.name, case.level, case.masks, dose, case.dose_problem)
    return WhatIf(factor, dose, review_case(rescaled, p, **review_options), current)
