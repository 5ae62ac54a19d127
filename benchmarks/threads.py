"""Threads for `arbiscale upscale` on an idle and on a loaded machine: --threads 1, 2 and auto side by side.

Each run is the real command in its own process (model load included): a 128x128 photo crop at 4x with the
bundled model and the defaults, median of `--repeats`. The load is `--load-threads` processes, each a torch
matmul loop on one thread, started before the run and stopped after it; "auto" measures the idle cores at
start (`cli.inference_options.idle_cores`).

    python benchmarks/threads.py --loads 0 1 2 --threads 1 2 auto --output /tmp/threads.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from common import cpu_name, publish  # benchmarks/, the script's folder

BUSY = "import torch; torch.set_num_threads(1); a = torch.randn(512, 512)\nwhile True: a = (a @ a).tanh()"


def run_once(photo: Path, out: Path, threads: str) -> float:
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    command = [sys.executable, "-m", "arbiscale.cli.main", "upscale", str(photo), "-s", "4", "-o", str(out), "--overwrite", "--no-progress", "--threads", threads]
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, nargs="+", default=[0, 1, 2], help="busy one-thread processes beside the run")
    parser.add_argument("--threads", nargs="+", default=["1", "2", "auto"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", help="also write the table to this markdown file")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    photo = folder / "astronaut.png"
    Image.fromarray(np.ascontiguousarray(data.astronaut()[40:296:2, 150:406:2])).save(photo)  # 128 x 128
    rows = []
    for load in args.loads:
        busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(load)]
        try:
            time.sleep(1.0 if load else 0.0)
            for threads in args.threads:
                times = [run_once(photo, folder / "out.png", threads) for _ in range(args.repeats)]
                rows.append((load, threads, statistics.median(times), min(times)))
                print(f"load {load}, --threads {threads}: median {rows[-1][2]:.2f} s", flush=True)
        finally:
            for process in busy:
                process.kill()
                process.wait()
    lines = [
        f"`python benchmarks/threads.py {' '.join(sys.argv[1:])}` on {cpu_name()}, "
        f"{os.cpu_count()} cores, {datetime.date.today()}: `arbiscale upscale` of a 128x128 photo at 4x, defaults, "
        f"whole command (start-up and model load included), median of {args.repeats}.",
        "",
        "| busy one-thread processes | --threads | median s | min s |",
        "|---|---|---|---|",
        *(f"| {load} | {threads} | {median:.2f} | {low:.2f} |" for load, threads, median, low in rows),
    ]
    publish("\n".join(lines) + "\n", args.output)


if __name__ == "__main__":
    main()
