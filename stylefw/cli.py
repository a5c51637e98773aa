"""The `stylefw` command: Hydra composes the config from the plugin registry in conf/, then runs it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from stylefw.errors import StylefwError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


@hydra.main(version_base="1.3", config_path="pkg://stylefw.conf", config_name="config")
def _task(cfg: DictConfig) -> float | None:
    from stylefw import quiet

    quiet.configure(bool(cfg.verbose))
    from stylefw.run import run

    hydra_cfg = HydraConfig.get()
    single_run = hydra_cfg.mode == RunMode.RUN
    try:
        metrics = run(cfg, Path(hydra_cfg.runtime.output_dir))
    except StylefwError as error:
        if not single_run or os.environ.get("HYDRA_FULL_ERROR") == "1" or cfg.get("debug"):
            raise
        print(f"stylefw: error: {error}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    where = metrics.get("output", metrics["image"])
    if metrics["status"] == "interrupted":
        print(f"stylefw: interrupted after {metrics['steps']} steps; current result saved to {where}", file=sys.stderr)
        if single_run:
            sys.exit(EXIT_INTERRUPTED)
        return None
    print(f"Saved {where}")
    return metrics["loss"]["total"]


def main() -> None:
    _task()


if __name__ == "__main__":
    main()
