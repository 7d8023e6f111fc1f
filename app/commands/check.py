"""``deepfake-studio check PATH...``: real, fake or unknown for each image, headless."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from app.commands import print_json

if TYPE_CHECKING:
    from core.inference import CheckResult

EPILOG = """\
Without --model the bundle shipped in assets/bundles/default is used.
Output: one line per image (with --json: one JSON object per image on stdout, the summary on
stderr). Unreadable files are reported as verdict "error" with a message.
Exit status: 0 when at least one image was checked (even if others were unreadable); 2 when
nothing could be checked (no image files found, none readable) or on bad options.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="tell whether images are real photos or AI-generated",
        description="Check images: real, fake (naming the generator) or unknown when the\n"
        "model is not confident enough.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    parser.add_argument(
        "--model",
        metavar="BUNDLE",
        help="a model bundle folder, its bundle.json or a .zip (or a training run folder, run "
        "with torch)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per image")
    parser.add_argument(
        "--report", metavar="FILE", help="also write a report: FILE.csv, FILE.json or FILE.html"
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, metavar="N", help="images per batch (default 32)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.bundle import load_default_bundle
    from core.errors import UserError
    from core.inference import OnnxPredictor, describe_skipped, iter_image_files, open_predictor
    from core.report_export import check_report_path, summary_line, write_report

    report = check_report_path(args.report) if args.report else None
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, not {args.batch_size}")
    predictor = open_predictor(args.model) if args.model else OnnxPredictor(load_default_bundle())
    skipped: list[tuple[str, str]] = []
    files = list(iter_image_files(args.paths, skipped=skipped))
    note = describe_skipped(skipped)
    if not files:
        raise UserError(
            f"no image files found in {', '.join(args.paths)}" + (f"; {note}" if note else "")
        )
    if note:
        print(f"warning: {note}", file=sys.stderr)
    info = sys.stderr if args.json else sys.stdout
    print(f"model: {predictor.description}; {predictor.calibration.summary()}", file=info)
    results = []
    keep_maps = report is not None and report.suffix.lower() == ".html"
    for result in predictor.predict_paths(files, batch_size=args.batch_size):
        if not keep_maps:
            result.cam = None
        results.append(result)
        if args.json:
            print_json(result.to_dict())
        else:
            print(table_line(result), flush=True)
    print(summary_line(results), file=info)
    if report is not None:
        write_report(results, report, model=predictor.description, preprocess=predictor.preprocess)
        print(f"report written to {report}", file=info)
    if not any(result.ok for result in results):
        raise UserError(f"none of the {len(results)} file(s) could be read as an image")
    return 0


def table_line(result: CheckResult) -> str:
    """``fake     sd14         93.1%  path`` (or ``error ... message``) for the human output."""
    if not result.ok:
        return f"{'error':<8} {'-':<14} {'-':>6}  {result.message}"
    return f"{result.verdict:<8} {result.label:<14} {result.confidence:>6.1%}  {result.path}"
