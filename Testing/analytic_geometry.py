"""Analytic Minkowski volumes (mm3) of the shapes the margin tests and benchmark grow, with a check of each
formula against a numerical integral of the grown body's cross-sections."""

import math

from scipy import integrate


def steiner_box(a, b, c, rx, ry, rz):
    """Box a x b x c grown by the ellipsoid of semi-axes rx, ry, rz."""
    return (
        a * b * c
        + 2 * (b * c * rx + a * c * ry + a * b * rz)
        + math.pi * (a * ry * rz + b * rx * rz + c * rx * ry)
        + 4 / 3 * math.pi * rx * ry * rz
    )


def steiner_cylinder(a, length, m):
    """Finite cylinder (radius a, flat ends) grown by a ball of radius m: V0 + S m + M m^2 + 4/3 pi m^3 with
    S = 2 pi a L + 2 pi a^2 and M = pi L (the side) + pi^2 a (the two rims, quarter tori)."""
    return (
        math.pi * a * a * length
        + (2 * math.pi * a * length + 2 * math.pi * a * a) * m
        + (math.pi * length + math.pi**2 * a) * m * m
        + 4 / 3 * math.pi * m**3
    )


def ball(radius):
    return 4 / 3 * math.pi * radius**3


def integrated_cylinder(a, length, m):
    """The grown cylinder by integration: beyond an end, at height h the section is a disk of radius
    a + sqrt(m^2 - h^2)."""
    cap, _ = integrate.quad(lambda h: math.pi * (a + math.sqrt(m * m - h * h)) ** 2, 0.0, m)
    return math.pi * (a + m) ** 2 * length + 2 * cap


def integrated_box(a, b, c, rx, ry, rz):
    """The grown box by integration: beyond the top, at height h the section is the rectangle grown by the
    ellipse of semi-axes (rx t, ry t), t = sqrt(1 - (h / rz)^2)."""

    def section(t):
        return a * b + 2 * t * (b * rx + a * ry) + math.pi * rx * ry * t * t

    top, _ = integrate.quad(lambda h: section(math.sqrt(max(0.0, 1 - (h / rz) ** 2))), 0.0, rz)
    return c * section(1.0) + 2 * top
