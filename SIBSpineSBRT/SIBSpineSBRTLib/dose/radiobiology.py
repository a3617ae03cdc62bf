"""Linear-quadratic radiobiology: BED and EQD2 of a total dose given in n equal fractions.

BED = n d (1 + d / (alpha/beta)) with d = D / n;  EQD2 = BED / (1 + 2 / (alpha/beta)).

For a fixed number of fractions BED is monotone in dose, so the BED of a dose metric (D2%, D0.03cc...) is
the metric of the BED distribution; this does not hold for a mean dose, which is therefore not converted.
Keep tumour (alpha/beta = 6 Gy in the seed protocol) and cord (2 Gy) values apart.
"""

from __future__ import annotations

import math


def _check(total_gy: float, fractions: int, alpha_beta_gy: float) -> None:
    if not math.isfinite(total_gy) or total_gy < 0:
        raise ValueError(f"Total dose must be a finite number of Gy >= 0; got {total_gy}.")
    if int(fractions) != fractions or fractions < 1:
        raise ValueError(f"Number of fractions must be a whole number >= 1; got {fractions}.")
    if not math.isfinite(alpha_beta_gy) or alpha_beta_gy <= 0:
        raise ValueError(f"alpha/beta must be a number of Gy > 0; got {alpha_beta_gy}.")


def bed(total_gy: float, fractions: int, alpha_beta_gy: float) -> float:
    """Biologically effective dose (Gy) of ``total_gy`` in ``fractions`` equal fractions."""
    _check(total_gy, fractions, alpha_beta_gy)
    d = total_gy / fractions
    return total_gy * (1.0 + d / alpha_beta_gy)


def eqd2(total_gy: float, fractions: int, alpha_beta_gy: float) -> float:
    """Equivalent dose in 2 Gy fractions (Gy)."""
    return bed(total_gy, fractions, alpha_beta_gy) / (1.0 + 2.0 / alpha_beta_gy)


def isoeffective_total(total_gy: float, fractions: int, alpha_beta_gy: float, new_fractions: int) -> float:
    """Total dose in ``new_fractions`` fractions with the same BED (positive root of the LQ quadratic)."""
    target = bed(total_gy, fractions, alpha_beta_gy)
    _check(0.0, new_fractions, alpha_beta_gy)
    # D (1 + D / (n ab)) = BED  ->  D^2 / (n ab) + D - BED = 0
    a = 1.0 / (new_fractions * alpha_beta_gy)
    return (-1.0 + math.sqrt(1.0 + 4.0 * a * target)) / (2.0 * a)


def metric_radiobiology(metric: str, value_gy: float, fractions: int, alpha_beta_gy: float):
    """BED and EQD2 of a dose metric (Dx%, Dxcc, Dmax, Dmin) as a dict, or None where the LQ conversion
    of the metric is not the metric of the converted dose (Dmean) or the metric is not a dose."""
    if value_gy is None or alpha_beta_gy is None or not (metric.startswith("D") and metric != "Dmean"):
        return None
    return {
        "alpha_beta_gy": alpha_beta_gy,
        "bed_gy": bed(value_gy, fractions, alpha_beta_gy),
        "eqd2_gy": eqd2(value_gy, fractions, alpha_beta_gy),
    }
