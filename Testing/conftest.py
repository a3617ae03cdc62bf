"""Shared fixtures. Tests needing slicer-core are marked ``mrml`` (the Python 3.9 pass runs the others)."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "SIBSpineSBRT"


@pytest.fixture
def scene():
    from SIBSpineSBRTLib.mrml.scene import new_scene

    ctx = new_scene()
    yield ctx
    ctx.scene.Clear(1)


@pytest.fixture(scope="session")
def protocol():
    from SIBSpineSBRTLib.protocol.model import load_protocol

    return load_protocol()


@pytest.fixture(scope="session")
def demo_case():
    from SIBSpineSBRTLib.phantoms.demo import build_demo_case

    return build_demo_case()


@pytest.fixture(scope="session")
def thoracic_case():
    """The default teaching case (the one ``sibspine demo`` reviews): the thoracic phantom, passing plan."""
    from SIBSpineSBRTLib.review.demo import build_teaching_case

    return build_teaching_case("thoracic", "pass")
