"""cydrop's default thread count against one thread while k busy processes load the cores.

Run ``python bench/bench_contention.py`` (or ``cydrop bench --contention``): it starts k = 0 ..
cores CPU-bound busy-loop processes and, under each load, times cydrop's forward (with the
runner's load feedback, and without it) and the PyTorch anchors (``F.dropout``, a threaded
``torch.mul``) at the default threads and at one thread, 64K to 64M float32 elements, and prints
default / one-thread medians. See cydrop/apps/contention.py.
"""
import sys

from cydrop.apps import contention


def main(argv=None):
    try:
        import torch
    except ImportError:
        torch = None
    repeat = int((argv or sys.argv[1:] or ["40"])[0])
    contention.run(repeat=repeat, torch=torch)


if __name__ == "__main__":
    main()
