"""Judging metrics against a protocol's optimal and mandatory limits.

Status of each constraint row:

* ``optimal``: the optimal limit is met;
* ``acceptable``: the mandatory limit is met but the optimal one is not;
* ``met``: the protocol gives only a mandatory limit, and it is met;
* ``fail``: the mandatory limit is not met;
* ``not_evaluable``: the metric could not be computed (missing structure or dose). Never a pass.
* ``not_applicable``: the protocol does not apply the limit in this case (the cord PRV where there is no
  cord: from the thecal-sac level down, the thecal sac is the organ at risk). Stated, with its reason.

A value is judged as shown: rounded (half up) to the constraint's reporting precision first.

Rows of unconfirmed local defaults (``confirmed: false``) are *advisory*: judged the same way, but they
never decide the verdict; ``advisory_verdict`` sums them up separately.

Overall verdict, over the confirmed rows: ``fail`` if any row fails (a known failure is not hidden by a
missing structure), otherwise ``incomplete`` if any row is not evaluable or the review has a problem that
stops a pass (e.g. a plan with another fractionation), otherwise ``pass``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

from .model import Constraint, Protocol

OPTIMAL, ACCEPTABLE, MET, FAIL, NOT_EVALUABLE = "optimal", "acceptable", "met", "fail", "not_evaluable"
NOT_APPLICABLE = "not_applicable"
STATUSES = (OPTIMAL, ACCEPTABLE, MET, FAIL, NOT_EVALUABLE, NOT_APPLICABLE)
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
    def advisory(self) -> bool:
        return self.constraint.advisory

    @property
    def judged_value(self) -> Optional[float]:
        """The value the status was decided on: rounded to the constraint's reporting precision."""
        return None if self.value is None else self.constraint.judged_value(self.value)

    @property
    def value_text(self) -> str:
        return self.constraint.format_value(self.value)

    @property
    def optimal_text(self) -> Optional[str]:
        c = self.constraint
        return c.optimal.describe(c.unit) if c.optimal else None

    @property
    def mandatory_text(self) -> Optional[str]:
        c = self.constraint
        return c.mandatory.describe(c.unit) if c.mandatory else None


def judge(constraint: Constraint, value: float) -> str:
    """Status of ``value`` (exact) judged at the constraint's reporting precision."""
    shown = constraint.judged_value(value)
    if constraint.mandatory is not None and not constraint.mandatory.is_met(shown):
        return FAIL
    if constraint.optimal is None:
        return MET
    return OPTIMAL if constraint.optimal.is_met(shown) else ACCEPTABLE


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


def _verdict(rows: List[RowResult], blocked: bool) -> str:
    statuses = {r.status for r in rows}
    if FAIL in statuses:
        return FAIL
    if NOT_EVALUABLE in statuses or blocked:
        return INCOMPLETE
    return PASS


def verdict(rows: List[RowResult], problems: Sequence[str] = ()) -> str:
    """The review's verdict over the confirmed rows; ``problems`` (review-level) stop a pass."""
    return _verdict([r for r in rows if not r.advisory], bool(problems))


def advisory_verdict(rows: List[RowResult], problems: Sequence[str] = ()) -> Optional[str]:
    """The same rule over the advisory rows (None when there are none and nothing is missing)."""
    advisory = [r for r in rows if r.advisory]
    if not advisory and not problems:
        return None
    return _verdict(advisory, bool(problems))


def status_counts(rows: List[RowResult]) -> Dict[str, int]:
    """How many rows have each status, in the order of STATUSES (statuses with no row left out)."""
    return {s: n for s in STATUSES if (n := sum(r.status == s for r in rows))}
