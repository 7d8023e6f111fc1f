"""``deepfake-studio train``: fine-tune a timm backbone on a folder-per-class data set."""

from __future__ import annotations

import argparse

from app.commands import add_threads_option

MONITOR_CHOICES = ("val_macro_f1", "val_acc", "val_auc", "val_loss")
"""What may pick a run's best epoch (``training.loop.MONITORS``; the app does not import it),
the first the default: macro F1 weighs every class the same, where accuracy on a data set
that real images dominate crowns early epochs that name no generator at all."""
OUTLIER_LOSS_CHOICES = ("uniform", "energy")
"""The outlier terms (``training.loop.OUTLIER_LOSSES``), the first the default."""


def add_mixing_arguments(p: argparse.ArgumentParser) -> None:
    """MixUp / CutMix options (train, distill)."""
    p.add_argument("--mixup", type=float, default=0.0, help="MixUp alpha (0 = off)")
    p.add_argument("--cutmix", type=float, default=0.0, help="CutMix alpha (0 = off)")
    p.add_argument("--mix-prob", type=float, default=1.0, help="share of batches mixed")


def add_device_argument(p: argparse.ArgumentParser) -> None:
    """``--device`` (train, prune, distill): checked by the job, which knows what PyTorch sees."""
    p.add_argument(
        "--device",
        default="auto",
        metavar="{auto,cpu,cuda,cuda:N}",
        help="where to train: auto (default) = a CUDA GPU when PyTorch sees one, else the CPU",
    )


def mixing_config(args: argparse.Namespace) -> dict[str, float]:
    """The job config keys of :func:`add_mixing_arguments`."""
    return {"mixup": args.mixup, "cutmix": args.cutmix, "mix_prob": args.mix_prob}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train (fine-tune) a detector on a folder-per-class data set",
        description="Fine-tune a timm architecture. The data folder has one subfolder per class "
        "('real' plus one per generator). Writes a run directory (see docs/run-directory.md).",
    )
    add_finetune_arguments(p)
    p.add_argument(
        "--train-share",
        type=float,
        default=1.0,
        metavar="SHARE",
        help="train on this seeded share of the train split, per class (learning curves; "
        "val and test stay the same)",
    )
    p.set_defaults(func=run)


def add_finetune_arguments(p: argparse.ArgumentParser) -> None:
    """Every fine-tune option but ``--train-share`` (train, curve); see :func:`finetune_config`."""
    p.add_argument(
        "--data", required=True, metavar="DIR", help="folder with one subfolder per class"
    )
    p.add_argument("--arch", default="mobilenetv3_small_100", help="timm architecture name")
    p.add_argument("--img-size", type=int, default=64, help="model input size in pixels")
    p.add_argument(
        "--resize-mode",
        choices=("resize_crop", "resize", "crop"),
        default="resize_crop",
        help="resize_crop: shorter side then centre crop; resize: squash; crop: native resolution",
    )
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--optimizer",
        choices=("adamw", "sgd"),
        default="adamw",
        help="sgd: Nesterov momentum 0.9 (use --lr 0.05-0.1, --weight-decay 5e-4)",
    )
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--schedule", choices=("cosine", "onecycle", "constant"), default="cosine")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    add_mixing_arguments(p)
    p.add_argument("--balanced", action="store_true", help="class-balanced sampling")
    p.add_argument("--jpeg-prob", type=float, default=0.0, help="chance of JPEG re-compression")
    p.add_argument("--downscale-prob", type=float, default=0.0, help="chance of down-scaling")
    p.add_argument("--crop-prob", type=float, default=0.5, help="chance of a random crop")
    p.add_argument("--early-stop", type=int, default=0, metavar="EPOCHS", help="patience, 0 = off")
    p.add_argument(
        "--monitor",
        choices=MONITOR_CHOICES,
        default=MONITOR_CHOICES[0],
        help="the validation figure that picks the best epoch (and stops early; default "
        "val_macro_f1: every class weighs the same, where val_acc favours the largest class)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val", type=float, default=0.1, help="validation share of the data")
    p.add_argument("--test", type=float, default=0.1, help="test share of the data")
    p.add_argument("--leave-out", metavar="CLASS", help="train without this class (rejection test)")
    p.add_argument(
        "--outlier-class",
        metavar="CLASS[,CLASS...]",
        help="outlier exposure: train this class's images toward 'unknown' (see --outlier-loss) "
        "instead of naming them (not a class of the model); several classes separated by commas, "
        "e.g. one generator per domain",
    )
    p.add_argument(
        "--outlier-weight",
        type=float,
        help="weight of the outlier term (default 0.5 for 'uniform', 0.1 for 'energy')",
    )
    p.add_argument(
        "--outlier-loss",
        choices=OUTLIER_LOSS_CHOICES,
        default=OUTLIER_LOSS_CHOICES[0],
        help="the outlier term: 'uniform' (softmax toward uniform) or 'energy' (logsumexp "
        "margins: known images high, outliers low)",
    )
    p.add_argument(
        "--pretrained",
        default="none",
        help="'none', 'hub' (download, needs the internet) or a local .safetensors file",
    )
    p.add_argument(
        "--model-kwargs",
        type=_json_object,
        default={},
        metavar="JSON",
        help="extra timm.create_model arguments, e.g. '{\"channels\": [32, 64, 128, 256]}'",
    )
    p.add_argument("--out", metavar="RUN_DIR", help="run directory (default: workspace/runs/...)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="bf16: bfloat16 autocast, about 1.8x faster on CPUs with AVX512-BF16 and on GPUs",
    )
    add_device_argument(p)
    p.add_argument(
        "--ema",
        type=float,
        default=0.0,
        metavar="DECAY",
        help="keep and save an exponential moving average of the weights (e.g. 0.999; 0 = off)",
    )
    p.add_argument(
        "--sam",
        type=float,
        default=0.0,
        metavar="RHO",
        help="sharpness-aware minimisation with this radius (e.g. 0.05; 0 = off): flatter "
        "minima, twice the compute per step",
    )
    add_threads_option(p)
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    p.add_argument("--json", action="store_true", help="print the final summary as JSON")


def _json_object(text: str) -> dict:
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object such as '{\"drop_rate\": 0.2}'")
    return value


def run(args: argparse.Namespace) -> int:
    from app.commands.jobcli import run_and_print

    return run_and_print({**finetune_config(args), "train_share": args.train_share}, args)


def finetune_config(args: argparse.Namespace) -> dict:
    """The fine-tune job config of :func:`add_finetune_arguments` (``out`` goes separately)."""
    return {
        "kind": "finetune",
        "data": args.data,
        "arch": args.arch,
        "img_size": args.img_size,
        "resize_mode": args.resize_mode,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "schedule": args.schedule,
        "label_smoothing": args.label_smoothing,
        **mixing_config(args),
        "balanced": args.balanced,
        "jpeg_prob": args.jpeg_prob,
        "downscale_prob": args.downscale_prob,
        "crop_prob": args.crop_prob,
        "early_stop": args.early_stop,
        "monitor": args.monitor,
        "seed": args.seed,
        "val": args.val,
        "test": args.test,
        "leave_out": args.leave_out,
        "outlier_class": args.outlier_class,
        "outlier_weight": args.outlier_weight,
        "outlier_loss": args.outlier_loss,
        "pretrained": args.pretrained,
        "resume": args.resume,
        "threads": args.threads,
        "precision": args.precision,
        "device": args.device,
        "ema": args.ema,
        "sam": args.sam,
        "workers": args.workers,
        "model_kwargs": args.model_kwargs,
        "workspace": args.workspace,
    }
