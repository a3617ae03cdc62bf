"""The physicist's sign-off of a review: who reviewed it, when, the decision and comments. Given on the
command line (``--reviewer``, ``--decision``, ``--comments``) or in the Slicer panel; stored in metrics.json
``signoff`` and printed in the report's sign-off block (left blank, to be filled by hand, when not given)."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Dict, Optional

DECISIONS = {
    "approve": "Approve",
    "approve-with-comments": "Approve with comments",
    "reject": "Reject",
}


class SignOffError(ValueError):
    pass


@dataclass(frozen=True)
class SignOff:
    reviewer: str
    decision: str  # a key of DECISIONS
    comments: str = ""
    date: str = ""  # ISO date (YYYY-MM-DD) the review was signed

    @classmethod
    def make(
        cls, reviewer: Optional[str], decision: Optional[str], comments: str = "", date: Optional[str] = None
    ) -> Optional[SignOff]:
        """A sign-off from the options; None when neither reviewer nor decision is given. A decision needs a
        reviewer and the reverse; "approve-with-comments" and "reject" need comments."""
        reviewer, decision, comments = (reviewer or "").strip(), (decision or "").strip().lower(), comments or ""
        if not reviewer and not decision:
            if comments.strip():
                raise SignOffError("--comments belong to a sign-off: give --reviewer and --decision too.")
            return None
        if not reviewer or not decision:
            raise SignOffError("A sign-off needs both --reviewer NAME and --decision (approve, approve-with-comments, "
                               "reject).")  # fmt: skip
        if decision not in DECISIONS:
            raise SignOffError(f"--decision {decision}: use one of {', '.join(DECISIONS)}.")
        if decision != "approve" and not comments.strip():
            raise SignOffError(f"--decision {decision} needs --comments saying why.")
        return cls(reviewer, decision, comments.strip(), date or _dt.date.today().isoformat())

    @property
    def decision_text(self) -> str:
        return DECISIONS[self.decision]

    def as_dict(self) -> Dict[str, str]:
        return {"reviewer": self.reviewer, "decision": self.decision, "comments": self.comments, "date": self.date}
