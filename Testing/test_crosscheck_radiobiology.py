"""Radiobiology against the protocol's statement, what-if normalisation, and the two-engine cross-check."""

import numpy as np
import pytest

from SIBSpineSBRTLib.dose import radiobiology as rb
from SIBSpineSBRTLib.mrml.slicerrt_dvh import parse_metric_column
from SIBSpineSBRTLib.protocol import evaluate as ev
from SIBSpineSBRTLib.protocol.crosscheck import apply_crosscheck, disagrees


def test_14gy_single_fraction_equals_25_3gy_in_5_at_ab6():
    # The protocol: 14 Gy x 1 equals 25.3 Gy in 5 fractions at alpha/beta = 6 (BED 46.7 Gy, EQD2 35.0 Gy).
    assert rb.bed(14, 1, 6) == pytest.approx(14 * (1 + 14 / 6))
    assert rb.isoeffective_total(14, 1, 6, 5) == pytest.approx(25.3, abs=0.05)
    assert rb.eqd2(25.3, 5, 6) == pytest.approx(rb.eqd2(14, 1, 6), abs=0.1)
    assert rb.eqd2(14, 1, 6) == pytest.approx(35.0, abs=0.05)


def test_seed_doses_and_cord_values():
    assert rb.bed(30, 5, 6) == pytest.approx(60.0) and rb.eqd2(30, 5, 6) == pytest.approx(45.0)
    assert rb.bed(45, 5, 6) == pytest.approx(112.5)
    assert rb.eqd2(25, 5, 2) == pytest.approx(43.75)
    # HyTEC's cord ladder is iso-BED at alpha/beta = 2 from 12.4 Gy x 1
    assert rb.isoeffective_total(12.4, 1, 2, 5) == pytest.approx(25.3, abs=0.05)
    for x in np.linspace(1, 60, 7):  # isoeffective_total inverts bed
        assert rb.bed(rb.isoeffective_total(x, 3, 4, 7), 7, 4) == pytest.approx(rb.bed(x, 3, 4))
    with pytest.raises(ValueError, match="fractions"):
        rb.bed(30, 0, 6)
    with pytest.raises(ValueError, match="alpha/beta"):
        rb.eqd2(30, 5, 0)


def rows_for(protocol, values):
    return ev.evaluate(protocol, lambda c: values[(c.structure, c.metric)], lambda s: False)


TABLE1_VALUES = {
    ("PTV_Eval", "D2%"): 46.0,
    ("PTV_Eval", "D90%"): 30.0,
    ("PTV_Eval", "D98%"): 27.5,
    ("GTV", "D2%"): 47.0,
    ("GTV", "D50%"): 43.0,
    ("GTV", "D90%"): 37.0,
    ("GTV", "D98%"): 30.0,
    ("SpinalCord_PRV02", "D0.03cc"): 24.9,
    ("ThecalSac", "D0.03cc"): 20.0,
}


def test_exact_boundaries(protocol):
    values = dict(TABLE1_VALUES)
    values[("PTV_Eval", "D90%")] = 29.7  # exactly the mandatory minimum: acceptable
    values[("SpinalCord_PRV02", "D0.03cc")] = 25.0  # exactly the maximum: met
    rows = {(r.structure, r.metric): r.status for r in rows_for(protocol, values)}
    assert rows[("PTV_Eval", "D90%")] == ev.ACCEPTABLE
    assert rows[("SpinalCord_PRV02", "D0.03cc")] == ev.MET
    assert ev.verdict(rows_for(protocol, values)) == ev.PASS


def test_crosscheck_agreement_keeps_our_value(protocol):
    rows = rows_for(protocol, TABLE1_VALUES)
    other = {k: v + 0.15 for k, v in TABLE1_VALUES.items()}
    checked = apply_crosscheck(rows, other)
    assert all(not r.crosscheck.flagged and r.crosscheck.used == "ours" for r in checked)
    assert [r.status for r in checked] == [r.status for r in rows]


def test_crosscheck_flags_and_uses_the_conservative_value(protocol):
    rows = rows_for(protocol, TABLE1_VALUES)
    other = dict(TABLE1_VALUES)
    other[("SpinalCord_PRV02", "D0.03cc")] = 25.6  # higher for a maximum limit: the other value decides -> fail
    other[("GTV", "D50%")] = 41.0  # lower for a minimum limit: optimal -> acceptable
    other[("ThecalSac", "D0.03cc")] = 18.0  # lower for a maximum: flagged, but ours (20) stays
    checked = {(r.structure, r.metric): r for r in apply_crosscheck(rows, other)}
    prv = checked[("SpinalCord_PRV02", "D0.03cc")]
    assert prv.crosscheck.flagged and prv.crosscheck.used == "SlicerRT" and prv.status == ev.FAIL
    assert "SlicerRT gives 25.60 Gy" in prv.message
    gtv = checked[("GTV", "D50%")]
    assert gtv.crosscheck.flagged and gtv.status == ev.ACCEPTABLE
    sac = checked[("ThecalSac", "D0.03cc")]
    assert sac.crosscheck.flagged and sac.crosscheck.used == "ours" and sac.value == 20.0
    assert ev.verdict(list(checked.values())) == ev.FAIL


def test_crosscheck_threshold_is_max_of_02gy_and_1_percent():
    assert not disagrees(10.0, 10.2) and disagrees(10.0, 10.21)
    assert not disagrees(45.0, 45.45) and disagrees(45.0, 45.46)


def test_slicerrt_metric_columns():
    assert parse_metric_column("D0.03cc (GY)") == ("D0.03cc", "GY")
    assert parse_metric_column("D98% (GY)") == ("D98%", "GY")
    assert parse_metric_column("V30 (cc)") == ("V30Gy", "cc")
    assert parse_metric_column("V30 (%)") == ("V30Gy%", "%")
    assert parse_metric_column("Mean dose (GY)") is None
