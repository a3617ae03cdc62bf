"""What-if: the plan rescaled so that the prescription metric equals the prescription, re-evaluated.

The original dose is never changed: the rescaled dose is a new DoseGrid (and, in MRML, a new node).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from ..dose.grid import DoseError, DoseGrid
from ..protocol import evaluate as ev
from .pipeline import ReviewResult


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


def rescaled_review(result: ReviewResult, factor: float) -> ReviewResult:
    """The review of the same plan with the whole dose multiplied by ``factor``, without recomputing: every
    DVH scales exactly, and each row is judged again. The original result and dose are untouched."""
    p = result.protocol
    dvhs = {name: dvh.scaled(factor) for name, dvh in result.dvhs.items()}
    before = {(r.structure, r.metric): r for r in result.rows}

    def value(c):
        if c.structure not in dvhs:
            row = before[(c.structure, c.metric)]
            raise (ev.NotApplicable if row.status == ev.NOT_APPLICABLE else ev.NotEvaluable)(row.message)
        return dvhs[c.structure].metric(c.metric)

    rows = ev.evaluate(p, value, lambda s: any(k[0] == s for k in before))
    inputs = result.inputs
    if inputs is not None and inputs.dose is not None:
        dose = inputs.dose.scaled(factor, f"{inputs.dose.name} x{factor:.4f}")
        inputs = replace(inputs, dose=dose)
    return replace(
        result,
        dvhs=dvhs,
        rows=rows,
        verdict=ev.verdict(rows, result.problems),
        advisory_verdict=ev.advisory_verdict(rows, result.not_contoured),
        inputs=inputs,
    )


def normalise_to_prescription(result: ReviewResult) -> WhatIf:
    """Scale the whole dose so that the prescription metric equals the prescription dose, and judge again."""
    p = result.protocol
    current = prescription_value(result)
    if current is None or current <= 0:
        raise DoseError(
            f"Cannot normalise: {p.prescription_structure} {p.prescription_metric} is not available "
            f"({result.volume_problems.get(p.prescription_structure, 'no dose in the structure')})."
        )
    factor = p.prescription_gy / current
    rescaled = rescaled_review(result, factor)
    return WhatIf(factor, rescaled.inputs.dose if rescaled.inputs else None, rescaled, current)
