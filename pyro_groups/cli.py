"""The ``pyro-groups`` console script."""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from typing import Callable, Optional, Sequence


def _exam_scores(args: argparse.Namespace) -> int:
    from pyro_groups.experiments import exam_scores as ex
    from pyro_groups.experiments import exam_scores_report as report

    if args.smoke_test:
        cfg = ex.smoke_config()
    elif args.paper:
        cfg = ex.paper_config()
    else:
        cfg = ex.Config()
    overrides = {
        k: v
        for k, v in {
            "groups": args.groups,
            "epochs": args.epochs,
            "seeds": args.seeds,
            "device": args.device,
            "workers": args.workers,
            "replicas": args.replicas,
            "last": args.last,
            "rows": tuple(args.rows) if args.rows else None,
        }.items()
        if v is not None
    }
    cfg = replace(cfg, **overrides)
    if args.last is not None and args.last > cfg.epochs:
        raise SystemExit(f"pyro-groups exam-scores: error: --last {args.last} exceeds the "
                         f"{cfg.epochs} epochs")
    if cfg.last > cfg.epochs:
        cfg = replace(cfg, last=cfg.epochs)
    if cfg.holdout >= cfg.groups:
        raise SystemExit(f"pyro-groups exam-scores: error: --groups {cfg.groups} leaves no "
                         f"training groups beside the {cfg.holdout} held out")
    if not args.distributed or os.environ.get("RANK", "0") == "0":
        print(
            f"Exam-Scores: {cfg.groups} groups ({cfg.holdout} held out), {cfg.epochs} epochs, "
            f"{cfg.seeds} seed(s), rows {', '.join(cfg.rows)}, device {cfg.device}, "
            + (f"{os.environ.get('WORLD_SIZE', 1)} data-parallel process(es)" if args.distributed
               else f"{cfg.workers} worker(s), at most {cfg.replicas} replicate(s) per "
               "computation")
        )
    if args.distributed:
        from pyro_groups.experiments.exam_scores_distributed import run_distributed

        result = run_distributed(cfg, args.out, progress=not args.no_progress)
        if result is None:  # not rank 0: rank 0 reports
            return 0
    else:
        result = ex.run(cfg, args.out, progress=not args.no_progress)
    print(report.format_table(result["results"]))
    print(
        f"(mean over the last {cfg.last} epochs, then mean ± std over seeds; "
        "paper numbers are on its own scale)"
    )
    for f in result["findings"]:
        print(report.describe(f))
    if "cpu_seconds" in result:
        print(f"wall {result['wall_seconds']:.0f} s, {result['cpu_seconds']:.0f} CPU-s in the "
              "training jobs")
    print(f"wrote {os.path.join(args.out, 'results.json')}, translation.png, errors_by_epoch.png")
    return 0


def _at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"int >= {low}"
    return parse


def _device(text: str) -> str:
    from pyro_groups.validation import ArgumentError, check_device

    try:
        check_device(text, "--device")
    except ArgumentError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _folder(text: str) -> str:
    from pyro_groups.validation import ArgumentError, check_output_dir

    try:
        check_output_dir(text, "--out")
    except ArgumentError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    from pyro_groups import __version__
    from pyro_groups.experiments.exam_scores import ROWS

    parser = argparse.ArgumentParser(prog="pyro-groups", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("exam-scores", help="reproduce the CxVAE Exam-Scores tables and figures")
    ex.add_argument("--groups", type=_at_least(2), help="number of groups N (default 32768)")
    ex.add_argument("--epochs", type=_at_least(1), help="training epochs (default 16)")
    ex.add_argument("--seeds", type=_at_least(1), help="training seeds per model (default 3)")
    ex.add_argument("--last", type=_at_least(1),
                    help="epochs averaged at the end (default 5; at most --epochs)")
    ex.add_argument("--rows", nargs="+", choices=list(ROWS), metavar="ROW",
                    help=f"models to run (default: all): {', '.join(ROWS)}")
    ex.add_argument("--device", type=_device, help="cpu (default), cuda or cuda:N")
    ex.add_argument("--workers", type=_at_least(1),
                    help="parallel training processes (default: one per available core)")
    ex.add_argument("--replicas", type=_at_least(1),
                    help="runs trained together as one replicated computation (default 1: one "
                    "fit per run; 7 with --paper)")
    ex.add_argument("--out", type=_folder, default="results/exam_scores", help="output folder")
    ex.add_argument("--paper", action="store_true", help="the paper's setting (64 epochs, 7 seeds)")
    ex.add_argument("--smoke-test", action="store_true", help="a seconds-long run (CI)")
    ex.add_argument("--no-progress", action="store_true", help="no progress bar")
    ex.add_argument("--distributed", action="store_true",
                    help="train each run data-parallel on the processes of a torchrun launch "
                    "(`torchrun --nproc_per_node=N -m pyro_groups.cli exam-scores --distributed`)")
    ex.set_defaults(func=_exam_scores)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if os.environ.get("CI") and args.command == "exam-scores" and not args.paper:
        args.smoke_test = args.smoke_test or os.environ.get("PYRO_GROUPS_FULL") is None
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
