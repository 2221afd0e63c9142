"""Peak resident memory of DSA's and DM's steps (test_bench_matching.py's states and steps),
each method and shape in its own process (peak RSS is per process):

    python benchmarks/matching_peak_memory.py dm-batched paper-cifar10-ipc10
    python benchmarks/matching_peak_memory.py all      # every case, one child process each

Methods: dsa (one outer step, match_images), dsa-inner (one train_network epoch), dm-batched,
dm-per-class (match_embeddings). Two steps are run; the RSS after building the state is
printed beside the peak, so their difference is what the step itself adds.
``DDBENCH_BENCH_THREADS`` sets torch's threads, as for the benchmarks.
"""

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_bench_matching import SHAPES, dm_step, dsa_inner_epoch, dsa_outer_step, make_state  # noqa: E402

METHODS = {
    "dsa": ("dsa", dsa_outer_step),
    "dsa-inner": ("dsa", dsa_inner_epoch),
    "dm-batched": ("dm", lambda st: dm_step(st, True)),
    "dm-per-class": ("dm", lambda st: dm_step(st, False)),
}


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(method: str, shape: str) -> None:
    import torch

    if os.environ.get("DDBENCH_BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["DDBENCH_BENCH_THREADS"]))
    kind, step = METHODS[method]
    st = make_state(shape, kind)
    setup = _maxrss_mib()
    t = time.perf_counter()
    for _ in range(2):
        step(st)
    print(f"{method} {shape}: peak RSS {_maxrss_mib():.0f} MiB (after setup {setup:.0f} MiB), "
          f"{(time.perf_counter() - t) / 2:.2f} s/step, {torch.get_num_threads()} thread(s)", flush=True)


def main_all() -> None:
    for shape in SHAPES:
        for method in METHODS:
            if method == "dsa-inner" and SHAPES[shape].ipc == 1:
                continue  # IPC 1 runs no inner epochs
            subprocess.run([sys.executable, __file__, method, shape], check=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["all"]:
        main_all()
    elif len(sys.argv) == 3 and sys.argv[1] in METHODS and sys.argv[2] in SHAPES:
        main(sys.argv[1], sys.argv[2])
    else:
        sys.exit(f"usage: python benchmarks/matching_peak_memory.py all | {'|'.join(METHODS)} {'|'.join(SHAPES)}")
