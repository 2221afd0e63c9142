"""Peak resident memory of two KRR-ST outer steps at the paper's CIFAR-100 shapes, ddbench's
step vs the reference-style step, each in its own process (peak RSS is per process):

    python benchmarks/krrst_peak_memory.py ours
    python benchmarks/krrst_peak_memory.py reference
"""

import contextlib
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_bench_krrst import make_distiller, reference_step  # noqa: E402


def main(which: str) -> None:
    d = make_distiller("paper-cifar100")
    setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.time()
    phase = lambda name: contextlib.nullcontext()  # noqa: E731
    for _ in range(2):
        d.step(phase) if which == "ours" else reference_step(d, phase)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{which}: peak RSS {peak:.0f} MiB (after setup {setup:.0f} MiB), {(time.time() - t) / 2:.2f} s/step")


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("ours", "reference"):
        sys.exit("usage: python benchmarks/krrst_peak_memory.py ours|reference")
    main(sys.argv[1])
