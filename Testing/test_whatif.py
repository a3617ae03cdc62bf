"""What-if normalisation: the prescription metric lands on the prescription, every dose metric scales
with the same factor, and the original dose is untouched."""

import numpy as np
import pytest
from test_review import toy_masks

from SIBSpineSBRTLib.dose.grid import DoseGrid
from SIBSpineSBRTLib.geometry.grid import ImageGeometry
from SIBSpineSBRTLib.review.pipeline import CaseInput, review_case
from SIBSpineSBRTLib.review.whatif import normalise_to_prescription


def test_normalisation_scales_every_dose_metric(protocol):
    dg = ImageGeometry((30, 20, 20), (-30, -30, -30), (3, 3, 2))
    ijk = np.stack(np.meshgrid(np.arange(20), np.arange(20), np.arange(30), indexing="ij"), -1).reshape(-1, 3)
    ras = dg.ijk_to_ras_points(ijk)
    values = 33 + 0.4 * ras[:, 1] - 0.2 * ras[:, 2]  # linear: every metric scales exactly with the dose
    arr = np.zeros(dg.shape)
    arr[ijk[:, 2], ijk[:, 1], ijk[:, 0]] = np.maximum(values, 0)
    dose = DoseGrid(arr, dg)
    first = review_case(CaseInput("lin", "T8", toy_masks(), dose), protocol)
    before = dose.array.copy()
    what = normalise_to_prescription(first)
    d90 = [r for r in what.result.rows if (r.structure, r.metric) == ("PTV_Eval", "D90%")][0]
    assert d90.value == pytest.approx(30.0, abs=1e-6)
    assert what.factor == pytest.approx(30.0 / what.before_gy)
    for a, b in zip(first.rows, what.result.rows):
        assert b.value == pytest.approx(a.value * what.factor, rel=1e-6), (a.structure, a.metric)
    assert np.array_equal(dose.array, before)


def test_normalisation_needs_the_prescription_structure(protocol):
    masks = toy_masks()
    del masks["SpinalCanal"]  # no PTV_Eval at a thoracic level
    dose = DoseGrid(np.full((5, 5, 5), 20.0), ImageGeometry((5, 5, 5), (-30, -30, -30), (15, 15, 15)))
    first = review_case(CaseInput("x", "T8", masks, dose), protocol)
    with pytest.raises(ValueError, match="Cannot normalise: PTV_Eval D90%"):
        normalise_to_prescription(first)


def test_rescaled_review_equals_reviewing_the_scaled_dose(protocol, demo_case):
    """Scaling the DVHs (no recomputation) gives the review of the scaled dose, row for row."""
    from SIBSpineSBRTLib.geometry.masks import Mask
    from SIBSpineSBRTLib.review.whatif import rescaled_review

    c = demo_case
    masks = {n: Mask(m, c.ct_geometry, n) for n, m in c.segments.items()}
    dose = DoseGrid(c.dose_gy, c.dose_geometry)
    first = review_case(CaseInput(c.name, c.level, masks, dose), protocol)
    for factor in (0.9, 1.08):
        fast = rescaled_review(first, factor)
        slow = review_case(CaseInput(c.name, c.level, masks, dose.scaled(factor)), protocol)
        for a, b in zip(fast.rows, slow.rows):
            assert (a.structure, a.metric, a.status) == (b.structure, b.metric, b.status)
            assert a.value == pytest.approx(b.value, abs=1e-6)
        assert fast.verdict == slow.verdict
    assert first.inputs.dose is dose and np.array_equal(dose.array, c.dose_gy)
