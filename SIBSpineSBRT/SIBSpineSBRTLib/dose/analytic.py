"""Analytic DVHs of simple solids in a linear dose field (Nelms et al. 2015), for tests and the demo.

Nelms B, Stambaugh C, Hunt D, Tonner B, Zhang G, Feygelman V. Methods, software and datasets to verify
DVH calculations against analytical values: Twenty years late(r). Med Phys 2015;42(8):4435-48.

Each ``*_fraction`` function gives V(D)/V, the fraction of the solid's volume receiving at least D, for a
dose linear in position. With Dmin and Dmax the dose limits of the solid, beta = (D - Dmin)/(Dmax - Dmin)
and u = 2 beta - 1:

* sphere, any gradient direction: the cap of height h = (Dmax - D)/|g|, pi h^2 (3r - h)/3 over 4/3 pi r^3;
* cylinder with its axis along the gradient: 1 - beta;
* cylinder with its axis across the gradient: 1/2 - [asin u + u sqrt(1 - u^2)]/pi;
* cone with its axis along the gradient: 1 - beta^3 with the apex at the low-dose end, (1 - beta)^3 with
  the apex at the high-dose end;
* cone with its axis across the gradient: [arccos u - 2u sqrt(1 - u^2) + u^3 arsech|u|]/pi
  (the coefficient 2 is right; a version with 1 circulates and is wrong by up to 0.16).

``AnalyticDVH`` turns any such V(D) into the metrics of ``dvh.DVH`` (same names and definitions).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import integrate, optimize

from .dvh import parse_metric
from .grid import DoseError


def _beta(dose, d_min: float, d_max: float) -> np.ndarray:
    return np.clip((np.asarray(dose, dtype=float) - d_min) / (d_max - d_min), 0.0, 1.0)


def sphere_fraction(dose, radius_mm: float, d_centre: float, gradient_gy_per_mm: float) -> np.ndarray:
    """Fraction of a sphere receiving at least ``dose`` (Gy); the dose at its centre is ``d_centre``."""
    g = abs(gradient_gy_per_mm)
    h = np.clip((d_centre + g * radius_mm - np.asarray(dose, dtype=float)) / g, 0.0, 2 * radius_mm)
    return h * h * (3 * radius_mm - h) / (4 * radius_mm**3)


def cylinder_parallel_fraction(dose, d_min: float, d_max: float) -> np.ndarray:
    """Cylinder (or any prism) with its axis along the gradient."""
    return 1.0 - _beta(dose, d_min, d_max)


def cylinder_perpendicular_fraction(dose, d_min: float, d_max: float) -> np.ndarray:
    """Cylinder with its axis across the gradient."""
    u = 2 * _beta(dose, d_min, d_max) - 1
    return 0.5 - (np.arcsin(u) + u * np.sqrt(1 - u * u)) / np.pi


def cone_parallel_fraction(dose, d_min: float, d_max: float, apex_at_high_dose: bool = False) -> np.ndarray:
    """Cone with its axis along the gradient."""
    b = _beta(dose, d_min, d_max)
    return (1 - b) ** 3 if apex_at_high_dose else 1 - b**3


def cone_perpendicular_fraction(dose, d_min: float, d_max: float) -> np.ndarray:
    """Cone with its axis across the gradient (the corrected formula, see the module docstring)."""
    u = 2 * _beta(dose, d_min, d_max) - 1
    au = np.abs(u)
    with np.errstate(divide="ignore", invalid="ignore"):
        arsech = np.where(au > 0, np.log((1 + np.sqrt(np.maximum(1 - au * au, 0.0))) / np.where(au > 0, au, 1)), 0.0)
    v = (np.arccos(u) - 2 * u * np.sqrt(np.maximum(1 - u * u, 0.0)) + u**3 * arsech) / np.pi
    return np.clip(v, 0.0, 1.0)


class AnalyticDVH:
    """Metrics of a known cumulative DVH: ``fraction(D)`` = V(D)/V on [d_min, d_max], volume in cc.

    Same metric names and definitions as ``dvh.DVH``: Dx is sup{D : V(D) >= x}, solved to 1e-10 Gy;
    Dmean = d_min + integral of V(D)/V over [d_min, d_max].
    """

    def __init__(self, fraction: Callable, d_min: float, d_max: float, volume_cc: float, name: str = "analytic"):
        self.fraction = fraction
        self.min, self.max = float(d_min), float(d_max)
        self.volume_cc = float(volume_cc)
        self.evaluated_volume_cc = self.volume_cc
        self.structure = name

    def volume_at_dose_cc(self, gy: float) -> float:
        if gy <= self.min:
            return self.volume_cc
        if gy >= self.max:
            return 0.0
        return float(self.fraction(gy)) * self.volume_cc

    def dose_at_volume_cc(self, cc: float) -> float:
        if cc > self.volume_cc * (1 + 1e-9):
            raise DoseError(f"{self.structure}: D{cc:g}cc is larger than the structure ({self.volume_cc:.4g} cc).")
        if cc <= 0:
            return self.max
        if cc >= self.volume_cc:
            return self.min
        return float(
            optimize.brentq(lambda d: self.volume_at_dose_cc(d) - cc, self.min, self.max, xtol=1e-12, rtol=1e-14)
        )

    def dose_at_volume_percent(self, percent: float) -> float:
        return self.dose_at_volume_cc(self.volume_cc * percent / 100.0)

    @property
    def mean(self) -> float:
        value, _ = integrate.quad(lambda d: self.volume_at_dose_cc(d) / self.volume_cc, self.min, self.max, limit=200)
        return self.min + value

    def metric(self, name: str) -> float:
        spec = parse_metric(name)
        if spec.kind == "D":
            return self.dose_at_volume_percent(spec.value) if spec.relative else self.dose_at_volume_cc(spec.value)
        if spec.kind == "V":
            cc = self.volume_at_dose_cc(spec.value)
            return 100.0 * cc / self.volume_cc if spec.relative else cc
        if spec.kind == "Volume":
            return self.volume_cc
        return {"Dmean": self.mean, "Dmax": self.max, "Dmin": self.min}[spec.kind]
