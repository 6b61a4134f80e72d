"""`python -m core.train --method minimax --epochs 10 --out runs/minimax.pt`

Also runs under `torchrun --nproc_per_node N -m core.train ...` (DistributedDataParallel).
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from .cli import OneLineParser, exit_without_teardown, run_main
from .losses import OBJECTIVES
from .losses.base import cast_option
from .models import MODELS
from .trainer import Cancelled, TrainConfig, TrainingError, train


def method_options() -> dict[str, tuple[object, str, list[str]]]:
    """option -> (default, help, methods that take it), over every registered objective."""
    found: dict[str, tuple[object, str, list[str]]] = {}
    for name, cls in OBJECTIVES.items():
        for key, (default, help_text) in cls.options.items():
            found.setdefault(key, (default, help_text, []))[2].append(name)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m core.train", description="Train one Unit Lens model.")
    parser.add_argument("--method", default="ce", help=f"one of {', '.join(sorted(OBJECTIVES))}")
    parser.add_argument("--dataset", default="fashion-mnist",
                        help="fashion-mnist, cifar10, cifar100, stl10 or imagefolder:PATH")
    parser.add_argument("--arch", default="resnet20", help=f"one of {', '.join(sorted(MODELS))}")
    parser.add_argument("--init", default="", help="start from these weights: a .pth/.pt/.safetensors state dict "
                        "or a Unit Lens checkpoint of the same arch (a head of another class count is trained anew)")
    parser.add_argument("--head-only-epochs", type=int, default=0,
                        help="train only the last linear layer for the first N epochs (a new head on --init "
                             "weights before the body moves; N = --epochs is a linear probe)")
    parser.add_argument("--input-size", type=int, default=None,
                        help="read an image folder at this size (default 64, or 224 for torchvision's families)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--limit", type=int, default=None, help="use only N training and N test images: a seeded, class-balanced sample of each")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.1, help="peak learning rate (linear warm-up over 25%% of steps, then cosine)")
    parser.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd",
                        help="sgd (Nesterov momentum) or adamw (decoupled weight decay: what ViTs train with)")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (Nesterov), or AdamW's beta1")
    parser.add_argument("--no-bn", action="store_true",
                        help="our CIFAR-style ResNets without batch norm (a control of the unit-ablation paper)")
    parser.add_argument("--dropout", type=float, default=0.0, help="dropout before the head, for our CIFAR-style ResNets")
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--out", default=None, help="checkpoint path (default runs/<method>.pt)")
    parser.add_argument("--progress", default="", help="JSON-lines progress file (default next to --out)")
    parser.add_argument("--resume", action="store_true", help="continue from --out's last epoch")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (GPU)")
    parser.add_argument("--no-cuda-graphs", action="store_true",
                        help="on a GPU, launch every kernel of each step instead of replaying CUDA graphs")
    parser.add_argument("--no-augment", action="store_true", help="no random crop and flip")
    parser.add_argument("--log-interval", type=float, default=1.0,
                        help="seconds between progress lines (the app's progress bar reads them)")
    parser.add_argument("--snapshot-per-class", type=int, default=50,
                        help="test images per class whose features every epoch's snapshot keeps (0: no snapshots)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--after", type=int, action="append", default=[], metavar="PID",
                        help="start once process PID (another core.train run) has ended; repeat for several: "
                             "the app's queue on a CPU")
    group = parser.add_argument_group("method options")
    for key, (default, help_text, methods) in method_options().items():
        group.add_argument(f"--{key.replace('_', '-')}", dest=key, default=None,
                           help=f"{help_text} [{', '.join(methods)}; default {default}]".replace("%", "%%"))
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    options = {}
    for key, (default, _, methods) in method_options().items():
        value = getattr(args, key)
        if value is None:
            continue
        if args.method in OBJECTIVES and args.method not in methods:
            raise TrainingError(f"--{key.replace('_', '-')} does not apply to method {args.method}")
        try:
            options[key] = cast_option(default, value)
        except ValueError:
            raise TrainingError(f"--{key.replace('_', '-')}: {value!r} is not a valid "
                                f"{type(default).__name__}") from None
    return TrainConfig(method=args.method, options=options, dataset=args.dataset, arch=args.arch,
                       epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       momentum=args.momentum, weight_decay=args.weight_decay, seed=args.seed, limit=args.limit,
                       device=args.device, out=f"runs/{args.method}.pt" if args.out is None else args.out.strip(),
                       progress=args.progress, resume=args.resume, compile=args.compile, cuda_graphs=not args.no_cuda_graphs,
                       augment=not args.no_augment, snapshot_per_class=args.snapshot_per_class,
                       log_interval_s=args.log_interval,
                       data_root=args.data_root, after_pids=tuple(args.after), init=args.init,
                       input_size=args.input_size, head_only_epochs=args.head_only_epochs,
                       optimizer=args.optimizer, no_bn=args.no_bn, dropout=args.dropout)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        meta = train(config, command="python -m core.train " + shlex.join(argv), terminal=True)
    except TrainingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (Cancelled, KeyboardInterrupt):
        done = config.out and Path(config.out).exists()
        print("error: cancelled" + ("; the last completed epoch is saved, --resume continues" if done
                                    else " before the first epoch ended; nothing was saved"), file=sys.stderr)
        return 130
    except MemoryError:
        print("error: out of memory; lower --batch-size", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"saved {config.out}: test accuracy {meta['test_accuracy']:.4f} "
              f"after {meta['epochs_completed']} epochs")
    return 0


if __name__ == "__main__":
    from .trainer import cancel_on_sigterm
    with cancel_on_sigterm():
        code = run_main(main)
    exit_without_teardown(code)
