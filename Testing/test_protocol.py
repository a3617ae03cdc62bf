"""The shipped protocol against the trial's Table 1, protocol validation, statuses and verdicts, roles."""

import copy
import json

import pytest

from conftest import MODULE_DIR
from SIBSpineSBRTLib.protocol import evaluate as ev
from SIBSpineSBRTLib.protocol.model import (
    Limit,
    ProtocolError,
    available_protocols,
    load_protocol,
    normalise_level,
    parse_protocol,
)
from SIBSpineSBRTLib.protocol.roles import resolve_roles

# Table 1 of Mitsuyoshi et al. 2025 as printed (Gy; None = "-"): (volume, metric, optimal, mandatory),
# each limit as (min, max).
TABLE_1 = [
    ("PTV_Eval", "D2%", (42, 48), (None, 51)),
    ("PTV_Eval", "D90%", (30, 30), (29.7, 30.3)),
    ("PTV_Eval", "D98%", (27, None), (21, None)),
    ("GTV", "D2%", (45, 48), (None, 51)),
    ("GTV", "D50%", (42, None), (36, None)),
    ("GTV", "D90%", (36, None), (27, None)),
    ("GTV", "D98%", (27, None), (21, None)),
    ("SpinalCord_PRV02", "D0.03cc", None, (None, 25)),
    ("ThecalSac", "D0.03cc", None, (None, 30)),
]


def limit_bounds(limit):
    if limit is None:
        return None
    if limit.target is not None:
        return (limit.target, limit.target)
    return (limit.lower, limit.upper)


def test_shipped_protocol_is_table_1(protocol):
    rows = [
        (c.structure, c.metric, limit_bounds(c.optimal), limit_bounds(c.mandatory))
        for c in protocol.required_constraints
    ]
    assert rows == TABLE_1
    assert protocol.prescription_gy == 30 and protocol.fractions == 5
    assert (protocol.prescription_structure, protocol.prescription_metric) == ("PTV_Eval", "D90%")
    assert protocol.planning.ptv_margins_mm == (2, 2, 2, 2, 5, 5)
    assert protocol.planning.prv_margin_mm == 2
    # "Below the L2 vertebral level, the thecal sac ... was contoured without an additional margin": L3 down
    assert protocol.planning.thecal_sac_from_level == "L3"
    d90 = protocol.required_constraints[1].optimal
    d90c = protocol.required_constraints[1]
    assert d90.is_met(d90c.judged_value(30.04)) and not d90.is_met(d90c.judged_value(30.06))  # 30.0 Gy at 0.1 Gy


def test_other_organ_limits_are_marked_as_defaults_with_sources(protocol):
    others = [c for c in protocol.constraints if not c.required]
    assert len(others) >= 10
    for c in others:
        assert not c.confirmed and "TG-101" in c.source, c


def test_every_shipped_protocol_loads():
    assert "mitsuyoshi2025" in available_protocols()
    for name in available_protocols():
        assert load_protocol(name).constraints


def _seed():
    return json.loads(available_protocols()["mitsuyoshi2025"].read_text(encoding="utf-8"))


SCHEMA = MODULE_DIR / "Resources" / "Schemas" / "sibspine-protocol-1.schema.json"


def schema_errors(data):
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    return list(validator.iter_errors(data))


def test_shipped_protocols_follow_the_schema():
    for path in available_protocols().values():
        assert schema_errors(json.loads(path.read_text())) == [], path.name


# (edit, message of our validator, whether the JSON schema alone can see it; the rest are cross-field rules)
@pytest.mark.parametrize(
    "edit, message, schema_sees_it",
    [
        (lambda d: d.update(format="other"), "format", True),
        (lambda d: d["constraints"][0].update(structure="Nope"), "not declared", False),
        (lambda d: d["constraints"][0].update(metric="D2"), "Unknown DVH metric", True),
        (lambda d: d["constraints"][0].update(optimal={"min": 50, "max": 40}), "above max", False),
        (lambda d: d["constraints"][0].update(optimal={"min": "40"}), "must be a number", True),
        (lambda d: d["constraints"][0].update(optimal={"equals": 30, "max": 31}), "either equals", True),
        (lambda d: d["constraints"][0].update(unit="cc"), "limit unit", False),
        (lambda d: d["constraints"].append(copy.deepcopy(d["constraints"][0])), "appears twice", False),
        (lambda d: d["constraints"][0].update(optimal=None, mandatory=None), "needs an optimal or a mandatory", True),
        (lambda d: d["planning"].update(thecal_sac_from_level="L9"), "not one of", True),
        (lambda d: d.pop("fractions"), "missing 'fractions'", True),
    ],
)
def test_invalid_protocols_are_refused_with_the_field_named(edit, message, schema_sees_it):
    data = _seed()
    edit(data)
    with pytest.raises(ProtocolError, match=message):
        parse_protocol(data, "test.json")
    assert bool(schema_errors(data)) == schema_sees_it


def test_percent_of_prescription_is_converted_to_gy():
    data = _seed()
    data["constraints"][0].update(unit="%Rx", optimal={"min": 140, "max": 160}, mandatory={"max": 170})
    c = parse_protocol(data).constraints[0]
    assert (c.unit, c.optimal.lower, c.optimal.upper, c.mandatory.upper) == ("Gy", 42, 48, 51)


def test_limits_are_inclusive_and_described_with_units():
    lim = Limit(lower=42, upper=48)
    assert lim.is_met(42) and lim.is_met(48) and not lim.is_met(41.999) and not lim.is_met(48.001)
    assert lim.describe("Gy") == ">= 42 and <= 48 Gy"
    assert Limit(upper=25).describe("Gy") == "<= 25 Gy"
    assert Limit(lower=90).describe("%") == ">= 90%"


@pytest.mark.parametrize(
    "index, value, status",
    [
        (0, 45.0, ev.OPTIMAL),
        (0, 49.0, ev.ACCEPTABLE),
        (0, 51.0, ev.ACCEPTABLE),
        (0, 51.04, ev.ACCEPTABLE),  # judged as shown: 51.0 Gy at the 0.1 Gy precision
        (0, 51.05, ev.FAIL),  # 51.1 Gy
        (0, 41.0, ev.ACCEPTABLE),  # below the optimal band but under the mandatory maximum
        (1, 30.0, ev.OPTIMAL),
        (1, 30.049, ev.OPTIMAL),  # shown 30.0 Gy
        (1, 29.95, ev.OPTIMAL),  # 30.0 Gy (half up)
        (1, 30.05, ev.ACCEPTABLE),  # 30.1 Gy
        (1, 29.949, ev.ACCEPTABLE),  # 29.9 Gy
        (1, 30.2, ev.ACCEPTABLE),
        (1, 30.304, ev.ACCEPTABLE),  # shown 30.3 Gy next to "<= 30.3 Gy": met, as shown
        (1, 29.64, ev.FAIL),
        (1, 30.35, ev.FAIL),  # 30.4 Gy
        (7, 25.0, ev.MET),  # no optimal level: MET, not OPTIMAL
        (7, 25.04, ev.MET),
        (7, 25.05, ev.FAIL),
        (4, 36.0, ev.ACCEPTABLE),
        (4, 35.94, ev.FAIL),
        (4, 42.0, ev.OPTIMAL),
    ],
)
def test_judge(protocol, index, value, status):
    assert ev.judge(protocol.required_constraints[index], value) == status


def test_verdict_precedence(protocol):
    c = protocol.required_constraints[0]
    row = lambda s: ev.RowResult(c, 1.0, s)  # noqa: E731
    assert ev.verdict([row(ev.OPTIMAL), row(ev.ACCEPTABLE)]) == ev.PASS
    assert ev.verdict([row(ev.OPTIMAL), row(ev.NOT_EVALUABLE)]) == ev.INCOMPLETE
    assert ev.verdict([row(ev.FAIL), row(ev.NOT_EVALUABLE)]) == ev.FAIL


def test_missing_metric_is_never_a_pass(protocol):
    def value(c):
        if c.structure == "SpinalCord_PRV02":
            raise ev.NotEvaluable("no cord")
        return 30.0

    rows = ev.evaluate(protocol, value, lambda s: True)
    prv = [r for r in rows if r.structure == "SpinalCord_PRV02"]
    assert [r.status for r in prv] == [ev.NOT_EVALUABLE] and prv[0].message == "no cord"
    assert ev.verdict(rows) != ev.PASS


def test_roles_by_alias_case_and_override(protocol):
    names = ["gtv", "CTV_Spine", "Spinal Cord", "Thecal_Sac", "Canal_Spinal", "PTV_TPS"]
    res = resolve_roles(protocol, names)
    assert res.get("GTV") == "gtv" and res.get("CTV") == "CTV_Spine" and res.get("SpinalCord") == "Spinal Cord"
    assert res.get("ThecalSac") == "Thecal_Sac" and res.get("SpinalCanal") == "Canal_Spinal"
    assert res.get("SacralCanal") is None
    res = resolve_roles(protocol, names + ["Cord_MR"], {"SpinalCord": "Cord_MR"})
    assert res.get("SpinalCord") == "Cord_MR"
    msg = resolve_roles(protocol, ["GTV"]).missing_message(protocol, "SpinalCord")
    assert "SpinalCord" in msg and "Segments found: GTV" in msg and "--role SpinalCord=NAME" in msg


def test_ambiguous_or_wrong_roles_are_errors(protocol):
    with pytest.raises(ProtocolError, match="could be the SpinalCord"):
        resolve_roles(protocol, ["Cord", "Spinal Cord"])
    with pytest.raises(ProtocolError, match="no segment named"):
        resolve_roles(protocol, ["GTV"], {"GTV": "Tumour"})
    with pytest.raises(ProtocolError, match="not a structure"):
        resolve_roles(protocol, ["GTV"], {"Tumour": "GTV"})


def test_levels():
    assert normalise_level(" t8 ") == "T8"
    with pytest.raises(ProtocolError):
        normalise_level("T13")


def test_level_only_when_written_explicitly():
    from SIBSpineSBRTLib.protocol.model import level_from_text

    assert level_from_text("SBRT spine level T8 SIB") == "T8" and level_from_text("Level: l3") == "L3"
    assert (
        level_from_text("T8 spine") is None and level_from_text("level T13") is None and level_from_text(None) is None
    )


def test_role_table_rows(protocol):
    from SIBSpineSBRTLib.protocol.roles import role_choices

    names = ["GTV", "CTV", "Cord", "Canal_Spinal", "Esophagus", "Lung_L"]
    rows = {role: chosen for role, chosen, _ in role_choices(protocol, names)}
    assert rows["SpinalCord"] == "Cord" and rows["SpinalCanal"] == "Canal_Spinal" and rows["ThecalSac"] is None
    assert rows["Esophagus"] == "Esophagus" and "Heart" not in rows  # optional organs only when present
    assert {"PTV", "PTV_Eval", "SpinalCord_PRV02"}.isdisjoint(rows)  # built, not chosen
    assert rows["SacralCanal"] is None  # needed at sacral levels, listed so it can be mapped
    mapped = {role: chosen for role, chosen, _ in role_choices(protocol, names, {"ThecalSac": "Canal_Spinal"})}
    assert mapped["ThecalSac"] == "Canal_Spinal" and mapped["SpinalCanal"] == "Canal_Spinal"


@pytest.mark.parametrize("field", ["constraints", "trial_results", "reference_doses", "prescription"])
def test_a_bad_metric_anywhere_is_a_protocol_error(field):
    """Every metric name in a protocol file is checked with the file and field named (never an internal error)."""
    data = json.loads((MODULE_DIR / "Resources" / "Protocols" / "mitsuyoshi2025.json").read_text())
    item = data[field] if field == "prescription" else data[field][0]
    item["metric"] = "D150%"
    with pytest.raises(ProtocolError, match=rf"edited\.json\.{field}.*metric"):
        parse_protocol(data, "edited.json")
