"""The one number a sweep's job returns to the sweeper (Optuna minimises it), read from the run's metrics under
the ``objective`` config; the summary computes the same number for every row."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from stylefw.errors import StylefwError, check_number

CONTENT_DISTANCE = "quality.content_distance"


def lookup(metrics: Mapping[str, Any], dotted_key: str) -> Any:
    """`metrics["quality"]["style_distance"]` for ``quality.style_distance``; None where a part is missing."""
    value: Any = metrics
    for part in dotted_key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def objective_value(metrics: Mapping[str, Any], objective: Mapping[str, Any] | None) -> float | None:
    """The number a sweep minimises for this run; None when the run has no such metric.

    - a completed run within the limit: its ``objective.metric`` (e.g. ``quality.style_distance``);
    - a completed run whose content distance is over ``objective.content_distance_max``:
      ``penalty + (content_distance − content_distance_max)``, so it ranks after every run
      within the limit (when ``penalty`` exceeds any value of the metric) and before a run
      further over it;
    - a failed or interrupted run, or a non-finite metric: ``2 × penalty``.

    A penalty, not a failure, because Optuna's TPE sampler ignores failed trials and would keep
    sampling a region where runs diverge, and Hydra's Optuna sweeper stops the whole study at the
    first failure unless ``max_failure_rate`` allows it.
    """
    if not objective:
        return None
    penalty = float(objective.get("penalty", 10.0))
    if metrics.get("status") != "completed":
        return 2 * penalty
    value = lookup(metrics, str(objective["metric"]))
    if not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value):
        return 2 * penalty
    limit = objective.get("content_distance_max")
    distance = lookup(metrics, CONTENT_DISTANCE)
    if limit is not None and isinstance(distance, (int, float)) and distance > limit:
        return penalty + (distance - limit)
    return float(value)


def check_objective(cfg: DictConfig) -> None:
    """Range checks of the ``objective`` keys, before any work."""
    objective = cfg.get("objective")
    if not objective:
        return
    if not str(objective.get("metric") or "").strip():
        raise StylefwError("objective.metric is empty: name a key of metrics.json, e.g. quality.style_distance")
    check_number("objective.penalty", objective.penalty, above=0, hint="above any value of the metric")
    limit = check_number("objective.content_distance_max", objective.get("content_distance_max"), least=0,
                         optional=True, hint="null: no limit")
    if limit is not None and not (cfg.get("metrics") and "_target_" in cfg.metrics):
        raise StylefwError("objective.content_distance_max needs the quality metrics: use metrics=default "
                           "or objective.content_distance_max=null")
