"""Warning categories: things a clinical user must see, never silently dropped.

Front ends collect them (``warnings.catch_warnings(record=True)``) and show them beside the results.
"""


class SIBSpineWarning(UserWarning):
    """Base class of every warning this library issues."""


class GeometryWarning(SIBSpineWarning):
    """A geometric operation lost or guessed something (clipped at a grid edge, partly outside a grid)."""


class DoseWarning(SIBSpineWarning):
    """A dose evaluation is less trustworthy than usual (structure partly outside the dose grid...)."""


class ProtocolWarning(SIBSpineWarning):
    """A protocol rule needs attention (missing organ at risk for the level, unconfirmed default limit...)."""
