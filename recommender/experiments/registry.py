"""Creating, listing, stopping and reporting experiments: what the CLI and the admin API share.

The store holds the definitions; creating or stopping one appends an ``experiment`` change to
the log in the same transaction, so every serving worker of every replica starts or stops
assigning readers within its next look at the log (``router.ExperimentRouter``).
"""

from __future__ import annotations

import time
from pathlib import Path

from recommender.domain import ValidationError, format_time
from recommender.models.bundle import list_versions
from recommender.models.versions import plugin_problems
from recommender.store import Store

from .definition import Experiment, experiment_from_dict
from .report import build_report


class ExperimentNotFound(KeyError):
    """No experiment has that name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "experiment not found"


class ExperimentConflict(RuntimeError):
    """The request contradicts what is stored (a name taken, an overlapping experiment, stopped already)."""


def load_all(store: Store) -> list[Experiment]:
    """Every experiment in the store, oldest first."""
    return [Experiment.from_json(row.definition, row.stopped_at) for row in store.experiments()]


def versions_in_use(store: Store, now: float | None = None) -> set[str]:
    """Model versions of the variants of every experiment not over (not stopped, not past its
    end): what pruning the models folder must spare, or a worker starting (or reloading) could not
    load a variant and would serve its lists outside the experiment."""
    now = time.time() if now is None else now
    return {variant.model_version for experiment in load_all(store) if not experiment.over(now)
            for variant in experiment.variants}


def get(store: Store, name: str) -> Experiment:
    for experiment in load_all(store):
        if experiment.name == name:
            return experiment
    raise ExperimentNotFound(f"no experiment named {name!r}; see 'newsrec experiments list'")


def _overlaps(a: Experiment, b: Experiment) -> bool:
    """Whether two experiments could claim the same list: a list type in common and their time
    windows (to the stop, if stopped) intersect."""
    if not set(a.lists) & set(b.lists):
        return False
    def window(e: Experiment) -> tuple[float, float]:
        end = min(x for x in (e.ends_at, e.stopped_at, float("inf")) if x is not None)
        return (e.starts_at if e.starts_at is not None else e.created_at), end
    (a0, a1), (b0, b1) = window(a), window(b)
    return a0 < b1 and b0 < a1


def create(store: Store, models_dir: str | Path, data: dict, now: float | None = None) -> Experiment:
    """Check and store a new experiment; returns it.

    Raises :class:`~recommender.domain.ValidationError` for a bad definition or a model version
    that is not a valid bundle in ``models_dir``; :class:`ExperimentConflict` when the name is
    taken or an experiment not over (running or scheduled) covers one of its list types at the same
    time (one experiment per list). An ``ends_at`` not after ``now`` is a ValidationError.
    """
    now = time.time() if now is None else now
    experiment = experiment_from_dict(data, now=now)
    if experiment.ends_at is not None and experiment.ends_at <= now:
        raise ValidationError(f"ends_at ({format_time(experiment.ends_at)}) is not in the future (now "
                              f"{format_time(now)}): the experiment would assign nobody; give a later end or none "
                              "(it runs until stopped)")
    valid = {row["version"] for row in list_versions(models_dir) if row["valid"]}
    missing = sorted({v.model_version for v in experiment.variants} - valid)
    if missing:
        raise ValidationError(f"model version(s) {', '.join(missing)} are not valid bundles in the models folder; "
                              "see 'newsrec models list' (train one with 'newsrec train')")
    for variant in experiment.variants:  # as promotion refuses it: a worker here could not serve the variant
        problems = plugin_problems(models_dir, variant.model_version)
        if problems:
            raise ValidationError(f"variant {variant.label} ({variant.model_version}) cannot be served here: "
                                  + "; ".join(problems))
    for other in load_all(store):
        if other.name == experiment.name:
            raise ExperimentConflict(f"an experiment named {experiment.name!r} exists already; pick another name")
        if _overlaps(other, experiment):
            raise ExperimentConflict(f"experiment {other.name!r} already covers {', '.join(other.lists)} lists then; "
                                     f"stop it first ('newsrec experiments stop {other.name}') or pick other lists")
    if not store.create_experiment(experiment.name, experiment.to_json(), now):
        raise ExperimentConflict(f"an experiment named {experiment.name!r} exists already; pick another name")
    return experiment


def stop(store: Store, name: str, now: float | None = None) -> Experiment:
    """Stop an experiment from now on: every worker serves its readers the normal lists again."""
    now = time.time() if now is None else now
    experiment = get(store, name)
    if experiment.status(now) == "ended":  # nothing to stop: "stopped" would misreport when it ended
        raise ExperimentConflict(f"experiment {name!r} ended at {format_time(experiment.ends_at)} already")
    stopped = store.stop_experiment(name, now)
    if stopped is None:
        raise ExperimentNotFound(f"no experiment named {name!r}; see 'newsrec experiments list'")
    if stopped is False:
        raise ExperimentConflict(f"experiment {name!r} was stopped already")
    return get(store, name)


def report(store: Store, name: str, now: float | None = None) -> dict:
    """The report of one experiment (see :func:`report.build_report`), counted from the store now,
    with its ``status`` at ``now`` (see :meth:`Experiment.status`)."""
    now = time.time() if now is None else now
    experiment = get(store, name)
    since = experiment.starts_at if experiment.starts_at is not None else experiment.created_at
    lists = store.experiment_lists(name)
    clicks = store.experiment_clicks(name, since=since - 86_400.0)  # a skewed client clock still counts
    out = build_report(experiment, lists, clicks)
    out["status"] = experiment.status(now)
    return out
