"""Two DVH engines on one plan: flag disagreements and judge with the more conservative value.

Inside Slicer, SlicerRT's DVH logic computes the same metrics as our engine. A difference larger than
``max(0.2 Gy, 1%)`` (of our value) is flagged, and the row is then judged with whichever value gives the
worse status: for a maximum limit the higher value, for a minimum limit the lower one, for a band the one
farther outside (or nearer the edge of) it. Rows that agree keep our exact value.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, List, Mapping, Optional, Tuple

from . import evaluate as ev

ABS_TOLERANCE_GY = 0.2
REL_TOLERANCE = 0.01
_SEVERITY = {ev.OPTIMAL: 0, ev.MET: 0, ev.ACCEPTABLE: 1, ev.FAIL: 2}


@dataclass(frozen=True)
class CrossCheck:
    engine: str
    value: float  # the other engine's value
    difference: float  # other - ours
    flagged: bool
    used: str  # "ours" or the other engine's name: which value the status is based on


def disagrees(ours: float, other: float) -> bool:
    return abs(other - ours) > max(ABS_TOLERANCE_GY, REL_TOLERANCE * abs(ours)) + 1e-9


def _margin(row: ev.RowResult, value: float) -> float:
    """How far inside its limits a value lies (negative: outside); smaller is more conservative."""
    c = row.constraint
    margins = []
    for limit in (c.mandatory, c.optimal):
        if limit is None:
            continue
        if limit.target is not None:
            margins.append((limit.tolerance or 0.0) - abs(value - limit.target))
        if limit.lower is not None:
            margins.append(value - limit.lower)
        if limit.upper is not None:
            margins.append(limit.upper - value)
    return min(margins) if margins else 0.0


def apply_crosscheck(
    rows: List[ev.RowResult], other: Mapping[Tuple[str, str], float], engine: str = "SlicerRT"
) -> List[ev.RowResult]:
    """Rows with the other engine's values attached; flagged rows re-judged on the conservative value."""
    out = []
    for row in rows:
        value = other.get((row.structure, row.metric))
        if row.value is None or value is None:
            out.append(row)
            continue
        flagged = disagrees(row.value, value)
        use_other = False
        if flagged:
            ours_status, other_status = ev.judge(row.constraint, row.value), ev.judge(row.constraint, value)
            if _SEVERITY[other_status] != _SEVERITY[ours_status]:
                use_other = _SEVERITY[other_status] > _SEVERITY[ours_status]
            else:
                use_other = _margin(row, value) < _margin(row, row.value)
        check = CrossCheck(engine, float(value), float(value) - row.value, flagged, engine if use_other else "ours")
        status = ev.judge(row.constraint, value) if use_other else row.status
        message = row.message
        if flagged:
            judged = f"{engine}'s" if use_other else "our"
            message = (
                f"{engine} gives {value:.2f} {row.unit}, ours {row.value:.2f} {row.unit}: they differ by more than "
                f"max({ABS_TOLERANCE_GY} Gy, {REL_TOLERANCE:.0%}); judged on {judged} value, the more conservative."
            )
        out.append(replace(row, status=status, message=message, crosscheck=check))
    return out


def crosscheck_summary(rows: List[ev.RowResult]) -> Optional[Dict[str, int]]:
    checked = [r for r in rows if getattr(r, "crosscheck", None) is not None]
    if not checked:
        return None
    return {"checked": len(checked), "flagged": sum(r.crosscheck.flagged for r in checked)}
