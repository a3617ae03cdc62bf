"""Judging metrics against a protocol's optimal and mandatory limits.

Status of each constraint row:

* ``optimal``: the optimal limit is met (or the protocol gives none and the mandatory limit is met);
* ``acceptable``: the mandatory limit is met but the optimal one is not;
* ``fail``: the mandatory limit is not met;
* ``not_evaluable``: the metric could not be computed (missing structure or dose). Never a pass.
* ``not_applicable``: the protocol does not apply the limit in this case (the cord PRV where there is no
  cord: from the thecal-sac level down, the thecal sac is the organ at risk). Stated, with its reason.

Overall verdict: ``fail`` if any row fails (a known failure is not hidden by a missing structure),
otherwise ``incomplete`` if any row is not evaluable, otherwise ``pass``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, List, Optional

from .model import Constraint, Protocol

OPTIMAL, ACCEPTABLE, FAIL, NOT_EVALUABLE = "optimal", "acceptable", "fail", "not_evaluable"
NOT_APPLICABLE = "not_applicable"
PASS, INCOMPLETE = "pass", "incomplete"


class NotEvaluable(Exception):
    """A metric cannot be computed; the text says why and what to do."""


class NotApplicable(Exception):
    """The protocol does not apply this limit to the case; the text says why."""


@dataclass(frozen=True)
class RowResult:
    constraint: Constraint
    value: Optional[float]
    status: str
    message: str = ""
    crosscheck: Any = None  # protocol.crosscheck.CrossCheck when a second DVH engine was run

    @property
    def structure(self) -> str:
        return self.constraint.structure

    @property
    def metric(self) -> str:
        return self.constraint.metric

    @property
    def unit(self) -> str:
        return self.constraint.unit

    @property
    def optimal_text(self) -> Optional[str]:
        c = self.constraint
        return c.optimal.describe(c.unit) if c.optimal else None

    @property
    def mandatory_text(self) -> Optional[str]:
        c = self.constraint
        return c.mandatory.describe(c.unit) if c.mandatory else None


def judge(constraint: Constraint, value: float) -> str:
    if constraint.mandatory is not None and not constraint.mandatory.is_met(value):
        return FAIL
    if constraint.optimal is None or constraint.optimal.is_met(value):
        return OPTIMAL
    return ACCEPTABLE


def evaluate(
    protocol: Protocol,
    metric_value: Callable[[Constraint], float],
    present: Callable[[str], bool],
) -> List[RowResult]:
    """Evaluate every required constraint, and optional ones whose structure is present.

    ``metric_value(constraint)`` returns the value in the constraint's unit or raises ``NotEvaluable``
    saying why it cannot be computed; that row becomes ``not_evaluable`` with the message.
    """
    rows = []
    for c in protocol.constraints:
        if not c.required and not present(c.structure):
            continue
        try:
            value = float(metric_value(c))
        except NotEvaluable as exc:
            rows.append(RowResult(c, None, NOT_EVALUABLE, str(exc)))
            continue
        except NotApplicable as exc:
            rows.append(RowResult(c, None, NOT_APPLICABLE, str(exc)))
            continue
        rows.append(RowResult(c, value, judge(c, value)))
    return rows


def verdict(rows: List[RowResult]) -> str:
    statuses = {r.status for r in rows}
    if FAIL in statuses:
        return FAIL
    if NOT_EVALUABLE in statuses:
        return INCOMPLETE
    return PASS
