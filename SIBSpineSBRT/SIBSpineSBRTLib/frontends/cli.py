"""``sibspine``: the review from the command line.

Exit codes: 0 every mandatory protocol limit met, in a review that follows the protocol; 1 a mandatory
limit failed; 2 bad input, an incomplete review (a structure or the dose missing, a plan that is not the
protocol's) or a non-protocol review (margins or protocol changed), with a message naming the problem.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .. import __version__

EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


class UsageError(ValueError):
    """A command-line request that cannot be carried out as given."""


def _parse_roles(items: Optional[List[str]]) -> Dict[str, str]:
    out = {}
    for item in items or []:
        role, sep, name = item.partition("=")
        if not sep or not role or not name:
            raise UsageError(f"--role {item}: use ROLE=SEGMENTNAME, e.g. --role SpinalCord=Cord_MR.")
        out[role.strip()] = name.strip()
    return out


def _exit_code(result) -> int:
    if result.verdict == "pass" and result.deviations:
        print(
            "Exit 2: every limit is met, but this is a NON-PROTOCOL REVIEW (see the deviations above); it is not a "
            "protocol pass.",
            file=sys.stderr,
        )
    return result.exit_code


def _inputs(args) -> List[str]:
    """Every input path the command was given (files and DICOM folders): never written, hashed in metrics.json."""
    names = ("dicom", "segmentation", "dose", "ct", "mr", "mr_transform", "rtstruct")
    out = [getattr(args, n, None) for n in names]
    protocol = getattr(args, "protocol", None)
    if protocol and Path(protocol).is_file():
        out.append(protocol)
    return [str(p) for p in out if p]


def _output_folder(args):
    """The --out folder, checked before any work (never an input, writable)."""
    from ..report.output_folder import REVIEW_OUTPUTS, OutputFolder

    return OutputFolder(args.out, _inputs(args), REVIEW_OUTPUTS)


def _report(ctx, result, folder, args, ct=None, mr=None, mr_to_ct=None) -> int:
    """Write every output into the staging folder, publish them together, then print the table: nothing says
    the verdict before its files exist."""
    from ..mrml.storage import save_scene_mrb
    from ..report.output_folder import input_hashes
    from ..report.outputs import write_review_outputs
    from ..report.signoff import SignOff
    from ..report.text_table import format_table

    result.signoff = SignOff.make(args.reviewer, args.decision, args.comments)
    hashes = input_hashes(_inputs(args))
    with folder as stage:
        staged = write_review_outputs(
            result, stage.path, ctx.scene, ct, mr, mr_to_ct, report=not args.no_report, input_files=hashes
        )
        names = [staged["metrics"].name] + [staged[k].name for k in ("report", "pdf") if k in staged]
        what_text = ""
        if args.normalise:
            what, what_text = _whatif(ctx, result, stage.path, args, hashes)
            names.append(str(what.relative_to(stage.path)))
        save_scene_mrb(ctx.scene, stage.path / "review.mrb")
        names.append("review.mrb")
    out = Path(args.out)
    print(format_table(result, color=args.color))
    if what_text:
        print(what_text)
    print("\nWrote " + ", ".join(str((out / n).resolve()) for n in names) + " (open the .mrb in 3D Slicer).")
    return _exit_code(result)


def _whatif(ctx, result, out: Path, args, hashes=None) -> Tuple[Path, str]:
    """Write the normalised what-if's metrics.json under ``out``; returns its path and its printout."""
    from ..mrml.case import add_dose_node
    from ..report.metrics_json import write_metrics_json
    from ..report.text_table import format_table
    from ..review.whatif import normalise_to_prescription

    p = result.protocol
    what = normalise_to_prescription(result)
    add_dose_node(ctx.scene, what.dose)
    text = (
        f"\nWhat-if: the whole dose x {what.factor:.4f} so that {p.prescription_structure} {p.prescription_metric} "
        f"= {p.prescription_gy:g} Gy (was {what.before_gy:.2f} Gy); the original dose is unchanged.\n\n"
        + format_table(what.result, color=args.color)
    )
    return write_metrics_json(what.result, out / "whatif_normalised" / "metrics.json", input_files=hashes), text


def cmd_demo(args) -> int:
    from ..mrml.scene import new_scene
    from ..protocol.model import load_protocol
    from ..review.demo import run_demo_review

    folder = _output_folder(args)
    protocol = load_protocol(args.protocol)
    margins, roles = _margins(args), _parse_roles(args.role)  # every option checked before any work
    ctx = new_scene()
    if args.export_dicom:
        _export_demo_dicom(args)
    result, nodes = run_demo_review(
        ctx.scene,
        protocol,
        args.drop_segment or (),
        roles,
        case=args.case,
        variant=args.variant,
        seed=args.seed,
        register_mr=True,
        **margins,
    )
    from ..registration.mrml_transform import node_to_world

    mr_to_ct = node_to_world(nodes.mr) if nodes.mr is not None else None
    return _report(ctx, result, folder, args, nodes.ct, nodes.mr, mr_to_ct)


def _export_demo_dicom(args) -> None:
    from ..caseio.dicom_write import export_case
    from ..geometry.masks import Mask
    from ..review.demo import build_teaching_case

    case = build_teaching_case(args.case, args.variant, args.seed)
    masks = {n: Mask(m, case.ct_geometry, n) for n, m in case.segments.items()}
    mr = [(case.mr_t1, case.mr_geometry, "MR T1"), (case.mr_t2, case.mr_geometry, "MR T2")]
    written = export_case(args.export_dicom, case, masks, case.colors, mr=mr, mr_to_ct=case.mr_to_ct)
    print(f"Wrote the case as DICOM (CT, MR, REG, RTSTRUCT, RTPLAN, RTDOSE) under {Path(written['folder']).resolve()}")


def _load_dose(ctx, path, unit):
    from ..mrml import storage
    from ..mrml.volumes import mark_as_dose

    dose = storage.load_volume(ctx.scene, path, "Dose")
    if unit:
        mark_as_dose(ctx.scene, dose, unit)
    return dose


def cmd_review(args) -> int:
    import warnings

    from ..dose.grid import DoseError
    from ..mrml import storage
    from ..mrml.case import case_input_from_nodes, store_review
    from ..mrml.scene import new_scene
    from ..protocol.model import load_protocol, normalise_level
    from ..review.pipeline import review_case

    protocol = load_protocol(args.protocol)
    margins, roles = _margins(args), _parse_roles(args.role)  # every option checked before any work
    if args.level is not None:
        normalise_level(args.level)
    folder = _output_folder(args)
    ctx = new_scene()
    if args.dicom:
        if args.segmentation or args.dose or args.ct or args.dose_unit:
            raise UsageError(
                "--dicom reads the whole case folder: leave out --segmentation, --dose, --dose-unit and --ct."
            )
        if args.mr or args.mr_transform or args.register:
            raise UsageError(
                "--mr, --mr-transform and --register place an MR from files; with --dicom the case's MR series are "
                "used as the folder registers them (same frame of reference): leave them out."
            )
        from ..caseio.case_loader import load_dicom_case
        from ..review.dicom_review import mr_for_fusion, review_dicom_case

        case = load_dicom_case(args.dicom, ctx, on_dose_error="record")
        result = review_dicom_case(case, protocol, args.level, args.name or case.default_name, roles, **margins)
        store_review(ctx.scene, case.segmentation, result)
        mr, mr_to_ct = mr_for_fusion(case)
        return _report(ctx, result, folder, args, case.ct, mr, mr_to_ct)
    if not (args.segmentation and args.dose and args.level):
        raise UsageError("Give --dicom CASE_DIR, or --segmentation, --dose (with --dose-unit) and --level.")
    if not args.dose_unit:
        raise UsageError(f"--dose {args.dose}: a volume file carries no dose unit; add --dose-unit Gy or cGy.")
    if args.mr_transform and args.register:
        raise UsageError("--mr-transform and --register both place the MR: give one (or neither, to use it as stored).")
    if (args.mr_transform or args.register) and not args.mr:
        raise UsageError("--mr-transform and --register place an MR: give it with --mr.")
    if args.mr and not args.ct:
        raise UsageError("--mr is fused with the planning CT: give the CT with --ct.")
    ct = storage.load_volume(ctx.scene, args.ct, "CT") if args.ct else None
    mr = storage.load_volume(ctx.scene, args.mr, "MR") if args.mr else None
    transform = storage.load_transform(ctx.scene, args.mr_transform, "MR to CT") if args.mr_transform else None
    seg = storage.load_segmentation(ctx.scene, args.segmentation)
    dose = _load_dose(ctx, args.dose, args.dose_unit)
    name = args.name or Path(args.segmentation).name.split(".")[0]
    with warnings.catch_warnings(record=True) as caught:  # e.g. a .seg.nrrd read on its own grid
        warnings.simplefilter("always")
        data = case_input_from_nodes(ctx.scene, seg, dose, args.level, name, reference_volume=ct)
    try:
        result = review_case(data, protocol, roles, **margins)
    except DoseError as exc:  # e.g. a probable unit error: name the file and the option
        raise DoseError(f"--dose {args.dose} (--dose-unit {args.dose_unit}): {exc}") from None
    result.messages[:0] = [f"Warning: {w.message}" for w in caught]  # listed with the review's messages
    store_review(ctx.scene, seg, result)
    mr_to_ct = None
    if mr is not None:
        from ..review.fusion import place_mr, registration_region

        region = registration_region(ct, seg, protocol, roles) if args.register else None
        mr_to_ct, how = place_mr(ctx.scene, ct, mr, transform, args.register, region)
        result.messages.append(how)
    return _report(ctx, result, folder, args, ct, mr, mr_to_ct)


def _margins(args):
    from ..geometry.margins import Margins

    try:
        ptv = None if args.ptv_margin_mm is None else Margins.parse(args.ptv_margin_mm)
        prv = None if args.prv_margin_mm is None else float(args.prv_margin_mm)
    except ValueError as exc:
        raise UsageError(f"--ptv-margin-mm/--prv-margin-mm: {exc}") from None
    if prv is not None and not 0 <= prv <= 50:
        raise UsageError(f"--prv-margin-mm must be a number of mm from 0 to 50; got {args.prv_margin_mm}.")
    if ptv is not None and max(ptv.as_tuple()) > 50:
        raise UsageError(f"--ptv-margin-mm: margins are 0-50 mm; got {args.ptv_margin_mm}.")
    return {"ptv_margins": ptv, "prv_margin_mm": prv}


def _print_warnings(caught) -> None:
    for w in caught:
        print(f"Warning: {w.message}", file=sys.stderr)


def cmd_volumes(args) -> int:
    import warnings

    from ..mrml import segmentations as segs
    from ..mrml import storage
    from ..mrml.scene import new_scene
    from ..mrml.volumes import volume_geometry
    from ..protocol.model import load_protocol, normalise_level
    from ..review.planning_volumes import plan_volumes

    out = Path(args.out)
    if bool(args.dicom) == bool(args.segmentation):
        raise UsageError("Give either --segmentation (a .seg.nrrd) or --dicom (a case folder).")
    protocol = load_protocol(args.protocol)
    level = normalise_level(args.level)
    margins, roles = _margins(args), _parse_roles(args.role)  # every option checked before any work
    if args.dicom and args.ct:
        raise UsageError("--ct chooses the grid of a .seg.nrrd; with --dicom the volumes are built on the case's CT.")
    if not args.dicom and not out.name.endswith(".seg.nrrd"):
        raise UsageError(f"--out {out}: give a .seg.nrrd file name (an RTSTRUCT .dcm needs --dicom input).")
    from ..report.output_folder import OutputFile

    target = OutputFile(out, _inputs(args))  # checked before any work: never an input, writable
    if args.dicom:
        from ..caseio.export import volumes_from_dicom

        with target as stage:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                done = volumes_from_dicom(
                    args.dicom,
                    level,
                    stage.path,
                    protocol=protocol,
                    role_overrides=roles,
                    **margins,
                )
            _print_warnings(caught)
            for m in done.messages:
                print(m, file=sys.stderr)
            if done.problems:
                reasons = " ".join(done.problems.values())
                raise UsageError("Planning volumes not built; nothing was written. " + reasons)
        volumes = done.volumes
    else:
        ctx = new_scene()
        seg = storage.load_segmentation(ctx.scene, args.segmentation)
        geometry = volume_geometry(storage.load_volume(ctx.scene, args.ct, "CT")) if args.ct else None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            masks = segs.read_segments(seg, geometry=geometry)
            planned = plan_volumes(protocol, masks, level, roles, **margins)
        _print_warnings(caught)
        if planned.problems:
            reasons = [planned.problem_message(protocol, n) for n in planned.problems]
            raise UsageError("Planning volumes not built; nothing was written. " + " ".join(reasons))
        for name, volume in planned.volumes.items():
            segs.write_derived_segment(seg, volume.mask, name, protocol.structures[name].color, volume.recipe)
        with target as stage:
            storage.save_segmentation(ctx.scene, seg, stage.path)
        volumes = planned.volumes
    for name, volume in volumes.items():
        print(f"{name:18s} {volume.mask.volume_cc:8.2f} cc   {volume.recipe}")
    print(f"Wrote {out.resolve()}")
    return EXIT_PASS


def cmd_serve(args) -> int:
    from .web.app import run

    return run(args)


DEFAULT_DVH_METRICS = ("D2%", "D50%", "D90%", "D98%", "D0.03cc", "Dmean", "Dmax", "Dmin")


def cmd_dvh(args) -> int:
    import json
    import warnings

    from ..dose.dvh import compute_dvh, parse_metric
    from ..dose.grid import DoseError
    from ..mrml import segmentations as segs
    from ..mrml import storage
    from ..mrml.scene import new_scene
    from ..mrml.volumes import dose_grid_from_node, volume_geometry

    metrics = args.metric or list(DEFAULT_DVH_METRICS)
    for m in metrics:
        try:
            parse_metric(m)
        except ValueError as exc:
            raise UsageError(f"--metric {m}: {exc}") from None
    if bool(args.segmentation) == bool(args.rtstruct):
        raise UsageError("Give either --segmentation (a .seg.nrrd) or --rtstruct (a DICOM RTSTRUCT file).")
    if args.rtstruct and args.ct:
        raise UsageError(
            "--ct chooses the grid of a .seg.nrrd; RTSTRUCT contours are evaluated as drawn: leave it out."
        )
    ctx = new_scene()
    from ..caseio.dicom_scan import looks_like_dicom

    notes = []  # said below the table (and in the JSON's "warnings")
    rtdose = None
    if looks_like_dicom(args.dose):  # RTDOSE: the unit and scaling come from the file
        from ..caseio.rtdose import read_rtdose

        rtdose = read_rtdose(args.dose)
        if args.dose_unit and args.dose_unit.upper() != rtdose.units:
            raise UsageError(f"--dose-unit {args.dose_unit}: {args.dose} states DoseUnits {rtdose.units}.")
        dose = rtdose.to_dose_grid()
    else:
        if not args.dose_unit:
            raise UsageError(f"--dose {args.dose}: a volume file carries no dose unit; add --dose-unit Gy or cGy.")
        try:
            dose = dose_grid_from_node(ctx.scene, _load_dose(ctx, args.dose, args.dose_unit))
        except DoseError as exc:
            raise DoseError(f"--dose {args.dose}: {exc}") from None
    unusable = {}  # structure key -> why it has no DVH (an ROI without contours, a refused ROI)
    if args.rtstruct:
        # RTSTRUCT: the contours go to the contour engine directly (slabs with half-slice end caps)
        from ..caseio.rtstruct_read import read_rtstruct, roi_keys

        structure_set = read_rtstruct(args.rtstruct)
        dose_frame = _check_dvh_frames(args.dose, rtdose, args.rtstruct, structure_set, notes)
        all_rois = structure_set.rois  # two ROIs with one name keep two keys ("GTV [ROI 3]")
        rois = {k: r for k, r in zip(roi_keys(all_rois), all_rois) if r.closed_planar()}
        for k, r in zip(roi_keys(all_rois), all_rois):
            if k not in rois:
                unusable[k] = (
                    f"ROI {r.label} has no contours (no closed planar contour in the structure set), so it has no "
                    "volume and no DVH"
                )
            elif dose_frame and r.frame_of_reference_uid and r.frame_of_reference_uid != dose_frame:
                unusable[k] = (
                    f"ROI {r.label} is drawn on frame of reference {r.frame_of_reference_uid}, not the dose's "
                    f"({dose_frame}), so it is not evaluated in this dose"
                )
                del rois[k]
        for r in structure_set.refused:
            unusable.setdefault(r.name, r.problem)
        names = list(rois)
    else:
        seg = storage.load_segmentation(ctx.scene, args.segmentation)
        geometry = volume_geometry(storage.load_volume(ctx.scene, args.ct, "CT")) if args.ct else None
        names = [k for _, k in segs.segment_keys(seg)]
    wanted = args.structure or names
    unknown = [n for n in wanted if n not in names and n not in unusable]
    if unknown:
        raise UsageError(f"--structure {', '.join(unknown)}: no such structure (structures: {', '.join(names)}).")
    empty = [n for n in wanted if n in unusable]
    if args.structure and empty:
        raise UsageError("; ".join(f"--structure {n}: {unusable[n]}" for n in empty) + ".")
    notes.extend(f"{n}: {unusable[n]}." for n in unusable if not args.structure)
    if args.rtstruct:
        masks = {n: rois[n].to_contour_structure() for n in wanted}
    out = {"structures": {}, "dose_unit": "Gy", "warnings": [], "not_available": {}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if not args.rtstruct:
            masks = segs.read_segments(seg, wanted, geometry)  # may warn that the file's own grid is used
        for name in wanted:
            try:
                dvh = compute_dvh(masks[name], dose)
            except DoseError as exc:  # e.g. a structure wholly outside the dose grid: its row only
                out["structures"][name] = {"volume_cc": None, **{m: None for m in metrics}}
                out["not_available"][name] = {m: str(exc) for m in ["volume_cc", *metrics]}
                continue
            values = {"volume_cc": round(dvh.volume_cc, 4)}
            try:
                values.update({m: round(v, 4) for m, v in dvh.metrics(metrics).items()})
            except DoseError:  # one metric is not defined here (D15cc of a 13 cc structure): that cell only
                for m in metrics:
                    try:
                        values[m] = round(dvh.metric(m), 4)
                    except DoseError as exc:
                        values[m] = None
                        out["not_available"].setdefault(name, {})[m] = str(exc)
            out["structures"][name] = values
    if out["structures"] and all(v["volume_cc"] is None for v in out["structures"].values()):
        reasons = {r["volume_cc"] for r in out["not_available"].values()}
        raise DoseError(" ".join(sorted(reasons)))
    out["warnings"] = notes + [str(w.message) for w in caught]
    text = json.dumps(out, indent=2)
    if args.json:
        print(text)
    else:
        width = max(len(n) for n in out["structures"])

        def cell(value, spec):
            return "n/a".rjust(len(format(0.0, spec))) if value is None else format(value, spec)

        print("  ".join(["Structure".ljust(width), "Volume cc".rjust(10), *[m.rjust(9) for m in metrics]]))
        for n, v in out["structures"].items():
            cells = [cell(v["volume_cc"], "10.3f"), *[cell(v[m], "9.2f") for m in metrics]]
            print("  ".join([n.ljust(width), *cells]))
        lines = [
            f"n/a: {n} {', '.join(m for m in why if m != 'volume_cc') or 'all'}: {reason}"
            for n, why in out["not_available"].items()
            for reason in dict.fromkeys(why.values())
        ]
        print("\nDoses in Gy" + (". " + " ".join(out["warnings"]) if out["warnings"] else "."))
        for line in lines:
            print(line)
    return EXIT_PASS


def _check_dvh_frames(dose_path, rtdose, rtstruct_path, structure_set, notes) -> str:
    """The RTDOSE's frame of reference, checked against the structure set's: a dose on none of the frames the
    contours are drawn in is in other patient coordinates and refused (exit 2); "" when it cannot be checked
    (a dose volume file, or a frame not named: a note says so)."""
    from ..caseio.errors import FrameOfReferenceError

    frames = set(structure_set.frame_of_reference_uids) | {
        r.frame_of_reference_uid for r in structure_set.rois if r.frame_of_reference_uid
    }
    dose_frame = rtdose.frame_of_reference_uid if rtdose is not None else ""
    if rtdose is None:
        notes.append(
            "The dose is a volume file, which names no frame of reference: check that it was computed on the CT the "
            "structures were drawn on."
        )
        return ""
    if not dose_frame or not frames:
        missing = " and ".join(what for what, has in (("the RTDOSE", dose_frame), ("the RTSTRUCT", frames)) if not has)
        notes.append(
            f"The frame of reference could not be checked ({missing} names none): check that the dose was computed "
            "on the CT the structures were drawn on."
        )
        return ""
    if dose_frame not in frames:
        raise FrameOfReferenceError(
            f"{dose_path} is on frame of reference {dose_frame}, but the structures of {rtstruct_path} are drawn on "
            f"{', '.join(sorted(frames))}: the dose and the contours are in different patient coordinates, so no DVH "
            "is computed. Give the RTDOSE computed on the CT this structure set was drawn on (or register and "
            "resample the dose onto it in the planning system first)."
        )
    return dose_frame


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sibspine",
        description="Spine SBRT with a simultaneous integrated boost: planning volumes, exact DVH metrics and "
        "protocol review.",
    )
    p.add_argument("--version", action="version", version=f"SIBSpineSBRT {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def planning(sp):
        sp.add_argument(
            "--role",
            action="append",
            metavar="ROLE=SEGMENT",
            help="use SEGMENT for protocol structure ROLE (repeatable): a name, ROI:n (DICOM ROI number) or ID:x "
            "(segment ID), e.g. --role SpinalCord=ROI:7",
        )
        sp.add_argument("--ptv-margin-mm", metavar="LR,AP,SI|R,L,A,P,S,I", help="override the protocol's PTV margins")
        sp.add_argument("--prv-margin-mm", metavar="MM", help="override the protocol's cord PRV margin")
        sp.add_argument(
            "--protocol", default=None, help="shipped protocol id or a protocol JSON file (default: mitsuyoshi2025)"
        )

    def common(sp):
        planning(sp)
        sp.add_argument(
            "--out",
            default="out/review",
            help="output folder for metrics.json/.csv, report.html/.pdf and review.mrb (default: %(default)s)",
        )
        sp.add_argument("--color", action="store_true", help="colour the status column")
        sp.add_argument("--no-report", action="store_true", help="skip the HTML and PDF reports")
        sp.add_argument("--reviewer", metavar="NAME", help="sign the review: the physicist's name (with --decision)")
        sp.add_argument(
            "--decision",
            choices=["approve", "approve-with-comments", "reject"],
            help="sign-off decision, stored in metrics.json and printed in the report's sign-off block",
        )
        sp.add_argument("--comments", default="", help="sign-off comments (needed for approve-with-comments, reject)")
        sp.add_argument(
            "--normalise",
            action="store_true",
            help="also review a rescaled copy of the dose with the prescription metric at the prescription dose",
        )

    d = sub.add_parser("demo", help="review a built-in synthetic teaching case (default: thoracic T8, passing plan)")
    common(d)
    d.set_defaults(out="out/demo", func=cmd_demo)
    from ..phantoms.cases import CASE_NAMES, DEFAULT_SEED, VARIANTS

    d.add_argument("--case", default="thoracic", choices=CASE_NAMES, help="teaching case (default: %(default)s)")
    d.add_argument(
        "--variant", default="pass", choices=VARIANTS, help="pass, or fail: a plan that breaks chosen limits"
    )
    d.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="image noise and MR misregistration (default: %(default)s)"
    )
    d.add_argument("--export-dicom", metavar="DIR", help="also write the case as DICOM files under DIR")
    d.add_argument(
        "--drop-segment",
        action="append",
        metavar="NAME",
        help="leave a segment out (to see how a missing structure is reported)",
    )

    r = sub.add_parser("review", help="review a plan from Slicer files (.seg.nrrd segmentation, dose volume)")
    common(r)
    r.set_defaults(func=cmd_review)
    r.add_argument("--dicom", metavar="CASE_DIR", help="DICOM case folder: planning CT, RTSTRUCT, RTDOSE (RTPLAN, MR)")
    r.add_argument("--segmentation", help="segmentation (.seg.nrrd)")
    r.add_argument("--dose", help="dose volume (.nrrd, ...)")
    r.add_argument(
        "--dose-unit",
        choices=["Gy", "cGy"],
        help="unit of the dose file's values (required: volume files carry no dose unit)",
    )
    r.add_argument(
        "--ct",
        help="planning CT volume: its grid is used for the segments (default: the segmentation's reference geometry)",
    )
    r.add_argument("--mr", help="MR volume for the fused MR/CT image (with --ct); used as stored unless placed")
    r.add_argument("--mr-transform", metavar="FILE", help="MR-to-CT linear transform (.h5, .tfm, .txt as Slicer saves)")
    r.add_argument("--register", action="store_true", help="register the MR to the CT (rigid, around the target)")
    r.add_argument(
        "--level",
        help="vertebral level of the target, C1-S5 (e.g. T8), or a range for a target spanning levels (T12-L2, "
        "L5-S1); with --dicom, default: 'level T8' in the RTPLAN label",
    )
    r.add_argument(
        "--name", help="case name shown in the outputs (default: from the segmentation file; no patient name)"
    )
    pv = sub.add_parser("volumes", help="build PTV, PTV_Eval and SpinalCord_PRV02 into a copy of a segmentation")
    planning(pv)
    pv.set_defaults(func=cmd_volumes)
    pv.add_argument("--segmentation", help="input segmentation (.seg.nrrd); it is not modified")
    pv.add_argument("--dicom", metavar="CASE_DIR", help="DICOM case folder (planning CT + RTSTRUCT) instead")
    pv.add_argument(
        "--level", required=True, help="vertebral level of the target, C1-S5 (e.g. T8), or a range (T12-L2)"
    )
    pv.add_argument(
        "--out",
        required=True,
        help="output: .seg.nrrd (every input segment plus the planning volumes) or, with --dicom, .dcm (RTSTRUCT)",
    )
    pv.add_argument("--ct", help="volume whose grid the volumes are built on (default: the segmentation's reference)")

    v = sub.add_parser("dvh", help="exact DVH metrics of segments in a dose volume")
    v.set_defaults(func=cmd_dvh)
    v.add_argument("--dose", required=True, help="dose: an RTDOSE .dcm, or a volume file (.nrrd, ...) with --dose-unit")
    v.add_argument("--dose-unit", choices=["Gy", "cGy"], help="unit of a volume file's values")
    v.add_argument("--segmentation", help="segmentation (.seg.nrrd)")
    v.add_argument(
        "--rtstruct", help="DICOM RTSTRUCT: its planar contours are evaluated directly (half-slice end caps)"
    )
    v.add_argument("--ct", help="volume whose grid the segments are read on (default: the segmentation's reference)")
    v.add_argument("--structure", action="append", metavar="NAME", help="segment to evaluate (repeatable; default all)")
    v.add_argument("--metric", action="append", metavar="M", help="metric such as D2%%, D0.03cc, V30Gy (repeatable)")
    v.add_argument("--json", action="store_true", help="print JSON instead of a table")
    from .web.app import add_arguments as serve_arguments  # stdlib only; trame loads when the server starts

    sv = sub.add_parser("serve", help="the residents' web demo: the review in a browser (trame-slicer)")
    serve_arguments(sv)
    sv.set_defaults(func=cmd_serve)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    from ..caseio.errors import CaseIOError
    from ..dose.grid import DoseError
    from ..geometry.grid import GeometryError
    from ..mrml.segmentations import SegmentationError
    from ..mrml.storage import StorageError
    from ..protocol.model import ProtocolError
    from ..report.output_folder import OutputError
    from ..report.signoff import SignOffError
    from ..review.demo import DemoError

    args = build_parser().parse_args(argv)
    try:
        if hasattr(args, "reviewer"):  # checked before any work
            from ..report.signoff import SignOff

            args.signoff = SignOff.make(args.reviewer, args.decision, args.comments)
        return args.func(args)
    except MemoryError:
        print(
            "Error: the machine ran out of memory for this case. Close other programs, or check that the images are "
            "the expected size (a header with a wrong size can ask for far more memory than the data need).",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    except (
        OutputError,
        SignOffError,
        UsageError,
        DemoError,
        CaseIOError,
        ProtocolError,
        DoseError,
        GeometryError,
        SegmentationError,
        StorageError,
    ) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:  # a full disk, a file that vanished, permissions: the machine's word, with the path
        where = f" ({exc.filename})" if exc.filename else ""
        print(
            f"Error: {exc.strerror or exc}{where}. Nothing was written to the output (it is as it was before).",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    except Exception as exc:  # noqa: BLE001 - the one place that turns any failure into exit 2 with a log
        log = _write_crash_log(argv)
        print(
            f"Error: internal error: {type(exc).__name__}: {exc}. Nothing was written to the output. This is a bug in "
            f"SIBSpineSBRT {__version__}: please report it with the log {log}.",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT


def _write_crash_log(argv) -> str:
    """The traceback of an unexpected error, in the user's cache (never beside patient files)."""
    import datetime
    import os
    import traceback

    folder = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sibspine-sbrt" / "logs"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"sibspine-{datetime.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.log"
        path.write_text(
            f"SIBSpineSBRT {__version__}\nargs: {sys.argv[1:] if argv is None else argv}\n\n{traceback.format_exc()}",
            encoding="utf-8",
        )
        return str(path)
    except OSError:
        traceback.print_exc()
        return "(could not be written; the traceback is above)"
