"""Headless regression review of a DICOM-RT case folder (planning CT, RTSTRUCT, RTDOSE; RTPLAN, MR).

Inside 3D Slicer, through Slicer's DICOM database and SlicerRT's DICOM-RT plugin, with SlicerRT's DVH
cross-checking every metric:

    Slicer --no-main-window --python-script Testing/regression_review.py -- --case DIR --out DIR [--level T8]

Outside Slicer, on slicer-core with the project's own DICOM reader:

    .venv/bin/python Testing/regression_review.py --case DIR --out DIR [--level T8]

Writes metrics.json (the demo's schema), metrics.csv, report.html and report.pdf (not with --no-report; they
need matplotlib and fpdf2, which desktop Slicer does not bundle) into --out. Exit code 0 when every mandatory
limit is met, 1 when one fails, 2 for bad input or an incomplete review. Inside Slicer the script always ends
with slicer.util.exit(code).
"""

import argparse
import sys
from pathlib import Path


def in_slicer() -> bool:
    try:
        import slicer
    except ImportError:
        return False
    return hasattr(slicer, "app")


def parse(argv):
    p = argparse.ArgumentParser(description="Review a DICOM-RT case against the protocol, headless.")
    p.add_argument("--case", required=True, help="DICOM case folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--level", help="vertebral level (default: 'level T8' written in the RTPLAN label)")
    p.add_argument("--protocol", help="protocol id or JSON file (default: the seed protocol)")
    p.add_argument("--role", action="append", metavar="ROLE=SEGMENT", help="segment for a protocol structure")
    p.add_argument("--name", help="case name in the outputs (default: from the study UID; no patient data)")
    p.add_argument("--no-report", action="store_true", help="skip report.html and report.pdf (they need matplotlib)")
    return p.parse_args([a for a in argv if a != "--"] if argv[:1] == ["--"] else argv)


def review(args) -> int:
    from SIBSpineSBRTLib.mrml.case import store_review
    from SIBSpineSBRTLib.protocol.model import load_protocol
    from SIBSpineSBRTLib.report.output_folder import OutputFolder, input_hashes
    from SIBSpineSBRTLib.report.outputs import write_review_outputs
    from SIBSpineSBRTLib.review.dicom_review import mr_for_fusion, review_dicom_case

    roles = dict(r.split("=", 1) for r in args.role or [])
    protocol = load_protocol(args.protocol)
    inputs = [args.case] + ([args.protocol] if args.protocol and Path(args.protocol).is_file() else [])
    folder = OutputFolder(args.out, inputs)  # checked before any work: never inside the case folder
    hashes = input_hashes(inputs)
    if in_slicer():
        import slicer

        from SIBSpineSBRTLib.caseio.slicer_dicom import load_case_with_slicer_dicom
        from SIBSpineSBRTLib.mrml.slicerrt_dvh import crosscheck_with_slicerrt, slicerrt_available

        scene = slicer.mrmlScene
        case = load_case_with_slicer_dicom(args.case)
    else:
        from SIBSpineSBRTLib.caseio.case_loader import load_dicom_case
        from SIBSpineSBRTLib.mrml.scene import new_scene

        scene = new_scene().scene
        case = load_dicom_case(args.case, scene, on_dose_error="record")
    result = review_dicom_case(case, protocol, args.level, args.name or case.default_name, roles)
    store_review(scene, case.segmentation, result)
    if in_slicer() and slicerrt_available() and case.dose is not None:
        result = crosscheck_with_slicerrt(scene, case.segmentation, case.dose, result)
    mr, mr_to_ct = mr_for_fusion(case)
    with folder as stage:  # all-or-nothing: the files appear together, or the folder stays as it was
        staged = write_review_outputs(
            result, stage.path, scene, case.ct, mr, mr_to_ct, report=not args.no_report, input_files=hashes
        )
    written = [Path(args.out) / p.name for p in staged.values()]
    print(f"{result.case}: verdict {result.verdict}; wrote " + ", ".join(str(p) for p in written))
    for message in result.messages:
        print(message)
    return result.exit_code


def main(argv) -> int:
    try:
        import SIBSpineSBRTLib  # noqa: F401 - on the path when the module is installed in Slicer
    except ImportError:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SIBSpineSBRT"))
    from SIBSpineSBRTLib.caseio.errors import CaseIOError
    from SIBSpineSBRTLib.dose.grid import DoseError
    from SIBSpineSBRTLib.protocol.model import ProtocolError
    from SIBSpineSBRTLib.report.output_folder import OutputError
    from SIBSpineSBRTLib.report.outputs import ReportDependencyError

    args = parse(argv)
    try:
        return review(args)
    except (CaseIOError, DoseError, ProtocolError, ReportDependencyError, OutputError, ValueError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    code = 2
    try:
        code = main(sys.argv[1:])
    finally:
        if in_slicer():
            import slicer

            slicer.util.exit(code)
    sys.exit(code)
