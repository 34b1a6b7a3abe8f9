"""Command line: ``python -m cydrop train | experiment | bench``.

Parses the arguments and calls the job: :mod:`cydrop.apps.train`,
:mod:`cydrop.apps.experiments` or :mod:`cydrop.apps.bench`.

``python -m cydrop train`` with no arguments is the README's demo: an MLP
with dropout on embedded spiral data, trained in seconds, with a progress
display and a final summary table.

Usage errors (bad flags, missing files, a missing optional extra) exit with
status 2 and one line on stderr, never a traceback.
"""

import argparse
import os
import sys

import numpy as np

from cydrop import _validation
from cydrop._contract import INDEX_LIMIT
from cydrop._openmp import effective_n_threads

from ..nn.schedules import parse_schedule
from . import experiments
from .report import require_matplotlib
from .train import load_dataset, train_mlp

__all__ = ["main", "build_parser"]

PROG = "python -m cydrop"
# The name shown in usage and error lines: the one cydrop was invoked as (see `_invoked_as`).
_prog = PROG


def _invoked_as(argv0):
    """The program name for ``sys.argv[0]``: ``cydrop`` for the console script (whatever its
    name or path), ``python -m cydrop`` for ``python -m cydrop``, ``cydrop`` when unknown."""
    argv0 = argv0 or ""
    base = os.path.basename(argv0)
    if base in ("__main__.py", "__main__.pyc") and \
            os.path.basename(os.path.dirname(os.path.abspath(argv0))) == "cydrop":
        return PROG
    if not base or base.startswith("-"):  # python -c, an embedded interpreter
        return "cydrop"
    if base.lower().endswith((".exe", ".py")):
        base = os.path.splitext(base)[0]
    return base


class UsageError(Exception):
    """A user error reported as one line on stderr with exit status 2."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and raise :class:`UsageError`."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def _int_list(text):
    try:
        values = [int(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be integers separated by commas, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"must be positive integers, got {text!r}")
    return values


def _rate_schedule(text):
    try:
        return parse_schedule(text)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _rate_list(text):
    try:
        values = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be numbers separated by commas, got {text!r}") from None
    bad = [v for v in values if not 0 <= v <= 1]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"every rate must satisfy 0 <= rate <= 1, got {text!r}")
    return values


def _checked(convert, ok, rule):
    """An argparse type: ``convert(text)`` that must satisfy ``ok``, else "must be {rule}"."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text!r}")
        return value
    return parse


_positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
_seed = _checked(int, lambda v: 0 <= v < INDEX_LIMIT, "an integer with 0 <= seed < 2**64")
_positive_float = _checked(float, lambda v: v > 0, "a number > 0")
_nonneg_float = _checked(float, lambda v: v >= 0, "a number >= 0")


def _threads(text):
    """--threads: any nonzero integer, however large (it is capped at the usable cores)."""
    try:
        value = int(text)
    except ValueError:
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise argparse.ArgumentTypeError(f"must be an integer, got {shown!r}") from None
    if value == 0:
        raise argparse.ArgumentTypeError("must be a non-zero integer (-1 = all cores), got 0")
    return _validation.check_n_threads(value)


def _png(text):
    if not text.lower().endswith(".png"):
        raise argparse.ArgumentTypeError(f"must be a .png file name, got {text!r}")
    return text


def build_parser(prog=None):
    """Build the argument parser of ``cydrop`` (``prog``: the name in its usage lines).

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    parser = _Parser(prog=prog or _prog,
                     description="cydrop: fast reproducible dropout; train small MLPs with it.")
    sub = parser.add_subparsers(dest="command", metavar="{train,experiment,bench}",
                                parser_class=_Parser)

    tr = sub.add_parser("train", help="train an MLP with dropout (default: the spiral demo)",
                        description="Train an MLP with dropout and print a summary table.")
    tr.add_argument("dataset", nargs="?", default="spiral", choices=("spiral", "digits", "mnist"),
                    help="spiral (embedded, default), digits (needs scikit-learn) or mnist "
                         "(needs PATH)")
    tr.add_argument("path", nargs="?", default=None,
                    help="directory of MNIST / Fashion-MNIST IDX files (mnist only)")
    tr.add_argument("--hidden", type=_int_list, default=None, metavar="N[,N...]",
                    help="hidden layer sizes (spiral: 128,128; others: 256,256)")
    tr.add_argument("--rates", type=_rate_list, default=None, metavar="R[,R...]",
                    help="dropout rate (drop probability) after each hidden layer; one value "
                         "for all (spiral: 0.1; others: 0.2 then 0.5)")
    tr.add_argument("--rate-schedule", type=_rate_schedule, default=None, metavar="SPEC",
                    help="drive every dropout layer's rate per step: constant:R, "
                         "linear:START,END,STEPS, cosine:START,END,STEPS or early:R,K "
                         "(R for the first K steps, then 0); overrides --rates")
    tr.add_argument("--optimizer", choices=("sgd", "momentum", "adam"), default="adam")
    tr.add_argument("--lr", type=_positive_float, default=None,
                    help="learning rate (adam: 0.005, sgd: 0.1)")
    tr.add_argument("--decay", type=_nonneg_float, default=0.0, help="lr / (1 + decay * step)")
    tr.add_argument("--l2", type=_nonneg_float, default=0.0,
                    help="L2 penalty on weights and biases")
    tr.add_argument("--epochs", type=_positive_int, default=None,
                    help="epochs (spiral: 60; others: 10)")
    tr.add_argument("--batch-size", type=_positive_int, default=None,
                    help="minibatch size (default 128)")
    tr.add_argument("--seed", type=_seed, default=0,
                    help="model seed (data split, weights, masks, shuffling)")
    tr.add_argument("--float32", action="store_true",
                    help="train in float32 (default float64; mnist: float32)")
    _common(tr)

    ex = sub.add_parser("experiment",
                        help="reproduce nnfs ch.15, CS231n or d2l dropout experiments",
                        description="Run one of the classroom dropout experiments and print its "
                                    "table.")
    ex.add_argument("name", choices=("nnfs", "cs231n", "d2l"))
    ex.add_argument("--epochs", type=_positive_int, default=None,
                    help="override the experiment's epochs (nnfs 10000, cs231n 25, d2l 100 on "
                         "digits)")
    ex.add_argument("--seed", type=_seed, default=0)
    ex.add_argument("--hidden", type=_int_list, default=None, metavar="N[,N...]",
                    help="nnfs: hidden sizes to run (default 64,512)")
    ex.add_argument("--dataset", choices=("digits", "mnist", "fashion-mnist"), default="digits",
                    help="d2l: dataset (mnist / fashion-mnist need --data)")
    ex.add_argument("--data", default=None, metavar="PATH", help="d2l: directory of IDX files")
    _common(ex)

    sub.add_parser("bench", help="dropout kernel benchmarks (arguments are passed on)",
                   add_help=False)
    return parser


def _common(p):
    p.add_argument("--plot", type=_png, default=None, metavar="FILE.png",
                   help="save a PNG of the curves (needs matplotlib: pip install 'cydrop[plot]')")
    p.add_argument("--threads", type=_threads, default=None, metavar="N",
                   help="threads for the dropout kernels (default: all usable cores; any nonzero "
                        "integer, capped at the usable cores; -k: all but k-1)")
    p.add_argument("--quiet", action="store_true", help="no progress display, only the final table")


# ---------------------------------------------------------------------------


def _train(args, out):
    """``train``: check the flags against each other, resolve the defaults, run the job."""
    spiral = args.dataset == "spiral"
    if args.dataset != "mnist" and args.path is not None:
        raise UsageError(f"{_prog} train: PATH is only used with mnist, got {args.path!r} for "
                         f"{args.dataset}")
    if args.dataset == "mnist" and args.path is None:
        raise UsageError(f"{_prog} train: mnist needs PATH, a directory holding "
                         "train-images-idx3-ubyte[.gz] and the other IDX files")
    hidden = args.hidden or ([128, 128] if spiral else [256, 256])
    # d2l's advice: a lower rate next to the input, 0.5 deeper
    rates = args.rates or ([0.1] if spiral else [0.2] + [0.5] * (len(hidden) - 1))
    if len(rates) == 1:
        rates = rates * len(hidden)
    if len(rates) != len(hidden):
        raise UsageError(f"{_prog} train: --rates must give one rate or one per hidden layer "
                         f"({len(hidden)}), got {len(rates)}")
    split = load_dataset(args.dataset, args.path, seed=args.seed)
    train_mlp(split, dataset=args.dataset, hidden=hidden, rates=rates, optimizer=args.optimizer,
              learning_rate=args.lr or (0.005 if args.optimizer == "adam" else 0.1),
              decay=args.decay, l2=args.l2, epochs=args.epochs or (60 if spiral else 10),
              batch_size=args.batch_size or 128, seed=args.seed,
              dtype=np.float32 if (args.float32 or args.dataset == "mnist") else np.float64,
              n_threads=args.threads, plot=args.plot, quiet=args.quiet, stream=out,
              rate_schedule=args.rate_schedule)
    return 0


def _experiment(args, out):
    """``experiment``: check the flags against each other, run the experiment."""
    if args.plot:
        require_matplotlib()
    n_threads = effective_n_threads(args.threads)
    if args.name != "d2l" and (args.data is not None or args.dataset != "digits"):
        raise UsageError(f"{_prog} experiment: --dataset and --data apply to d2l only, "
                         f"not {args.name}")
    if args.name != "nnfs" and args.hidden is not None:
        raise UsageError(f"{_prog} experiment: --hidden applies to nnfs only, not {args.name}")
    if args.name == "nnfs":
        experiments.run_nnfs(hidden_sizes=tuple(args.hidden or (64, 512)),
                             epochs=args.epochs or 10000, seed=args.seed, plot=args.plot,
                             stream=out, n_threads=n_threads,
                             print_every=0 if args.quiet else 1000)
    elif args.name == "cs231n":
        experiments.cs231n_regularization(epochs=args.epochs or 25, seed=args.seed,
                                          plot=args.plot, stream=out, n_threads=n_threads,
                                          verbose=not args.quiet)
    else:
        if args.dataset != "digits" and args.data is None:
            raise UsageError(f"{_prog} experiment d2l: --dataset {args.dataset} needs --data PATH")
        experiments.d2l_sweep(dataset=args.dataset, data_path=args.data, epochs=args.epochs,
                              seed=args.seed, plot=args.plot, stream=out, n_threads=n_threads)
    if args.plot:
        print(f"saved {args.plot}", file=out)
    return 0


def main(argv=None, prog=None):
    """Entry point of the ``cydrop`` command and of ``python -m cydrop``.

    Parameters
    ----------
    argv : list of str or None, default=None
        Arguments without the program name; ``None`` reads ``sys.argv``.
    prog : str or None, default=None
        The program name in usage and error lines. ``None``: the name cydrop was invoked as
        (``cydrop``, or ``python -m cydrop``) when ``argv`` is ``None``, else ``python -m cydrop``.

    Returns
    -------
    status : int
        0 on success, 2 on a usage error (one line on stderr), 130 when
        interrupted.
    """
    global _prog
    if prog is None:
        prog = _invoked_as(sys.argv[0] if sys.argv else "") if argv is None else PROG
    _prog = prog
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        from . import bench  # the benchmark runner (and its optional torch), only when asked for

        return bench.main(argv[1:], prog=f"{prog} bench")
    out = sys.stdout
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            args = build_parser().parse_args(["train", *argv])
        if args.command == "train":
            return _train(args, out)
        return _experiment(args, out)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except (FileNotFoundError, ImportError, ValueError) as exc:
        # missing or malformed data files, a missing optional extra, a rejected value
        print(f"{_prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{_prog}: interrupted", file=sys.stderr)
        return 130
