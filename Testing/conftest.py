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


# -- the bad-input suite's case count, printed at the end of a run that collected it -------------------------

BAD_INPUTS = "test_bad_inputs.py"


def _bad_input_case(nodeid: str) -> bool:
    return nodeid.split("::")[0].endswith(BAD_INPUTS) and "[" in nodeid


def pytest_collection_finish(session):
    session.config._bad_input_cases = [i.nodeid for i in session.items if _bad_input_case(i.nodeid)]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    from collections import Counter

    cases = getattr(config, "_bad_input_cases", None)
    if not cases:
        return
    families = Counter(n.split("::")[1].split("[")[0].replace("test_", "") for n in cases)
    outcomes = Counter()
    for outcome in ("passed", "failed", "xfailed", "xpassed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            if _bad_input_case(getattr(report, "nodeid", "")) and getattr(report, "when", "call") in ("call", "setup"):
                if outcome != "passed" or report.when == "call":
                    outcomes[outcome] += 1
    terminalreporter.write_sep(
        "-",
        f"bad-input suite ({BAD_INPUTS}): {len(cases)} cases ("
        + ", ".join(f"{k} {v}" for k, v in families.items())
        + "): "
        + ", ".join(f"{v} {k}" for k, v in outcomes.items() if v),
    )
