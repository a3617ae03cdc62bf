"""Two DVH engines on one plan: flag disagreements and judge with the more conservative value.

Inside Slicer, SlicerRT's DVH logic computes the same metrics as our engine. A difference larger than
``max(0.2 Gy, 1%)`` (of our value) is flagged, and the row is then judged with whichever value gives the
worse status: for a maximum limit the higher value, for a minimum limit the lower one, for a band the one
farther outside (or nearer the edge of) it. Rows that agree keep our exact value.

The other engine is a second opinion and never stops a review (``crosscheck_rows``): when it cannot run (an
error, nothing to check, a structure with no segment) the rows stay as our engine judged them and a message
says "<engine> cross-check skipped: <why>".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

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


SKIPPED = "cross-check skipped"

#: ``compute(segment_ids, metrics)``: structure -> non-empty segment ID, metric names -> {(structure, metric): Gy}.
Engine = Callable[[Dict[str, str], Sequence[str]], Mapping[Tuple[str, str], float]]


def _noted(rows: List[ev.RowResult], structures: Sequence[str], note: str) -> List[ev.RowResult]:
    """The rows of ``structures`` that have a value, with ``note`` added to their message."""

    def add(row):
        if row.structure not in structures or row.value is None or note in row.message:
            return row
        return replace(row, message=f"{row.message} {note}".strip())

    return [add(r) for r in rows]


def crosscheck_rows(
    rows: List[ev.RowResult], segment_ids: Mapping[str, Optional[str]], compute: Engine, engine: str = "SlicerRT"
) -> Tuple[List[ev.RowResult], List[str]]:
    """Run the other engine on the structures of the rows that have a value, and attach its values
    (``apply_crosscheck``). Returns the rows and the review-level messages; never raises.

    ``segment_ids`` maps a structure to its segment ID in the other engine's segmentation. A structure without
    one (missing, or ``""``) is left out, and its rows say so: SlicerRT would dereference a null segment for an
    ID it cannot find. When no structure is left the engine is not called, since SlicerRT takes an empty
    selection for every segment. Any error of the engine skips the whole check."""
    skipped = f"{engine} {SKIPPED}"
    wanted = list(dict.fromkeys(r.structure for r in rows if r.value is not None and r.structure in segment_ids))
    if not wanted:
        return list(rows), [f"{skipped}: no evaluated structure to check."]
    missing = [s for s in wanted if not segment_ids[s]]
    ids = {s: str(segment_ids[s]) for s in wanted if segment_ids[s]}
    notes = []
    if missing:
        notes.append(f"{skipped} for {', '.join(missing)}: no such segment in the reviewed segmentation.")
    out = _noted(list(rows), missing, f"{skipped}: no segment.")
    if not ids:
        notes.append(f"{skipped}: no segment to check.")
        return out, notes
    metrics = list(dict.fromkeys(r.metric for r in rows if r.value is not None and r.structure in ids))
    try:
        other = {key: float(v) for key, v in dict(compute(ids, metrics)).items() if math.isfinite(float(v))}
    except Exception as exc:  # a second opinion never stops the review
        return out, notes + [f"{skipped}: {exc}"]
    out = apply_crosscheck(out, other, engine)
    silent = [s for s in ids if not any(key[0] == s for key in other)]
    if silent:
        notes.append(f"{skipped} for {', '.join(silent)}: {engine} gave no value.")
        out = _noted(out, silent, f"{skipped}: no value.")
    return out, notes


def crosscheck_summary(rows: List[ev.RowResult]) -> Optional[Dict[str, int]]:
    checked = [r for r in rows if getattr(r, "crosscheck", None) is not None]
    if not checked:
        return None
    return {"checked": len(checked), "flagged": sum(r.crosscheck.flagged for r in checked)}
