"""The demo review, shared by ``sibspine demo``, the pytest suite and the Slicer module's self-test."""

from __future__ import annotations

from typing import Iterable, Mapping, Optional, Tuple

from ..mrml.case import CaseNodes, case_input_from_nodes, store_review
from ..phantoms import cases as phantom_cases
from ..protocol.model import Protocol, load_protocol
from .pipeline import ReviewResult, review_case


class DemoError(ValueError):
    """A request the teaching cases cannot satisfy."""


CASES = phantom_cases.CASE_NAMES  # cervical, thoracic, lumbar, sacrum
VARIANTS = phantom_cases.VARIANTS  # pass, and fail: a plan that breaks chosen limits, for teaching
DEFAULT_SEED = phantom_cases.DEFAULT_SEED


def build_teaching_case(case: str = "thoracic", variant: str = "pass", seed: int = DEFAULT_SEED):
    """The in-memory teaching case (``phantoms.cases.PhantomCase``: CT, MR T1/T2, segments, SIB dose)."""
    if case not in CASES or variant not in VARIANTS:
        raise DemoError(
            f"No teaching case {case!r} / variant {variant!r}; available: cases {', '.join(CASES)}, "
            f"variants {', '.join(VARIANTS)}."
        )
    return phantom_cases.build_case(case, variant, seed)


def run_demo_review(
    scene,
    protocol: Optional[Protocol] = None,
    drop_segments: Iterable[str] = (),
    role_overrides: Optional[Mapping[str, str]] = None,
    case: str = "thoracic",
    variant: str = "pass",
    seed: int = DEFAULT_SEED,
    register_mr: bool = False,
    progress=None,
    **review_options,
) -> Tuple[ReviewResult, CaseNodes]:
    """Build a teaching case in ``scene`` (CT, segmentation, dose, MR T1 and T2; with ``register_mr`` the MR
    registered to the CT), review it and store the results back in the scene (``review_options``:
    ``ptv_margins``, ``prv_margin_mm`` as ``review_case`` takes them). ``nodes.mr`` is the T1."""
    from ..phantoms.sample_data import load_phantom

    protocol = protocol or load_protocol()
    built = build_teaching_case(case, variant, seed)
    for name in drop_segments:
        if name not in built.segments:
            raise DemoError(f"The demo case has no segment {name} ({', '.join(built.segments)}).")
        del built.segments[name]
    loaded = load_phantom(scene, register_mr=register_mr, progress=progress, built=built)
    nodes = CaseNodes(loaded["ct"], loaded["segmentation"], loaded["dose"], loaded["mr_t1"])
    data = case_input_from_nodes(scene, nodes.segmentation, nodes.dose, built.level, built.name)
    result = review_case(data, protocol, role_overrides, **review_options)
    store_review(scene, nodes.segmentation, result)
    return result, nodes


def demo_result_problems(result: ReviewResult, protocol: Protocol) -> list:
    """Checks shared by the pytest suite and the Slicer self-test; returns the problems found (none: OK).

    The truths are independent of the engines: the protocol's Table 1 rows, the normalisation the
    phantom applies (PTV_Eval D90% = 30 Gy) and the statuses implied by each value and its limits.
    """
    from ..protocol.evaluate import judge

    problems = []
    required = [(c.structure, c.metric) for c in protocol.required_constraints]
    got = [(r.structure, r.metric) for r in result.rows]
    if got[: len(required)] != required:
        problems.append(f"Table 1 rows missing or out of order: {got}")
    for r in result.rows:
        if r.value is None:
            problems.append(f"{r.structure} {r.metric} has no value: {r.message}")
        elif judge(r.constraint, r.value) != r.status:
            problems.append(f"{r.structure} {r.metric} = {r.value} has status {r.status}")
    d90 = next((r.value for r in result.rows if (r.structure, r.metric) == ("PTV_Eval", "D90%")), None)
    if d90 is None or abs(d90 - 30.0) > 0.01:
        problems.append(f"PTV_Eval D90% should be 30 Gy after normalisation; got {d90}")
    if result.verdict != "pass":
        problems.append(f"the demo plan should pass; verdict {result.verdict}")
    return problems
