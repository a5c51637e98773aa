"""Peak memory (RSS) of a `method=pixel` run by output size, each in a fresh `stylefw` process.

Each size runs `stylefw size=S method.steps=N logger=none metrics=none` with the default
losses and optimizer; peak RSS is read by the parent from the child's rusage (so it covers
the whole process: Python, torch, weights, activations, the optimizer's state). A size that
cannot fit is reported with stylefw's own one-line error.

    python benchmarks/memory.py --sizes 256 512 1024 2048 --steps 5
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table  # noqa: E402


def peak_rss(size: int, steps: int, extra: list[str]) -> tuple[float | None, str]:
    """(peak RSS in MiB, status or error line) of one stylefw process."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "stylefw", f"size={size}", f"method.steps={steps}", "logger=none",
                   "metrics=none", f"hydra.run.dir={folder}", *extra]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        finished = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
        after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if finished.returncode != 0:
        return None, (finished.stderr.strip().splitlines() or ["failed"])[-1]
    # RUSAGE_CHILDREN holds the largest peak of any child so far; sizes run smallest first, so it is this one's.
    return (after if after > before else before) / 1024, "completed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("overrides", nargs="*", help="extra stylefw overrides, e.g. optimizer.history_size=20")
    args = parser.parse_args()
    rows = []
    for size in sorted(args.sizes):
        peak, status = peak_rss(size, args.steps, args.overrides)
        rows.append((f"{size}²", f"{peak / 1024:.2f}" if peak else "–", status))
        print(f"{size}²: {rows[-1][1]} GiB, {status}", flush=True)  # progress: large sizes take minutes
    print(f"\nmethod=pixel, {args.steps} steps, overrides: {' '.join(args.overrides) or '(defaults)'}")
    print(table(("size", "peak RSS (GiB)", "status"), rows))


if __name__ == "__main__":
    main()
