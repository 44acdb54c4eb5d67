"""One training run from a typed spec: what ``ghnerf train``, the ``train`` flow and the pipeline all call.

:class:`~ghnerf.student.train_spec.TrainSpec` holds every user-facing option with its default (the CLI
and the Prefect flow's parameters are generated from it), and :func:`run_training` turns it into a student config,
example sets and a call to
:func:`ghnerf.student.train.train`.
"""

from collections.abc import Callable
from pathlib import Path

from ghnerf.base.errors import BadViewsError
from ghnerf.base.kinds import HeatmapSource
from ghnerf.student.train import TrainState
from ghnerf.student.train_spec import TrainSpec


def run_training(spec: TrainSpec, on_step: Callable[[int, dict], None] | None = None,
                 log: Callable[[str], None] = print) -> TrainState:
    """Build the example sets of ``spec`` and train.

    Args:
        spec: the run.
        on_step: called after every step with (step, record) where record has loss, psnr, lr, it_s.
        log: where progress lines go.
    Returns:
        the training state (final step and per-step history).
    Raises:
        ConfigError: inconsistent options (teacher without targets, unknown config, ...).
    """
    from ghnerf.student.data import ExampleSet
    from ghnerf.student.train import train
    from ghnerf.target_fusion import FusionConfig
    from storage.targets import TargetStore

    cfg = spec.student_config()

    def store(teacher: str | None):
        return TargetStore(spec.targets, teacher, storage_options=spec.storage_options,
                           allow_partial=spec.allow_partial_targets) if teacher else None

    hm_store, cse_store = store(spec.teacher), store(spec.cse_teacher)
    heat = (HeatmapSource.NONE if not cfg.heatmap_head else HeatmapSource.STORE if hm_store
            else HeatmapSource.DATASET)
    fusion = FusionConfig() if spec.fuse_targets and heat == HeatmapSource.STORE else None
    examples = ExampleSet(spec.data, "train", cfg.source_views, spec.image_scale, heat, hm_store, cse_store,
                          fusion=fusion, source_targets=cfg.source_heatmap_head)
    val = ExampleSet(spec.data, "test", cfg.source_views, spec.image_scale,
                     heat if heat != HeatmapSource.STORE else HeatmapSource.NONE)
    for line in examples.reader.warnings():
        log(f"warning: {line}")
    for ts in (hm_store, cse_store):
        for line in (ts.left_out if ts else []):
            log(f"warning: left out (--allow-partial-targets): {line}")
    validate_views(examples, val, spec.exclude_bad_views, log)
    for line in dict.fromkeys(examples.notices() + val.notices()):  # the split's line once
        log(f"warning: {line}")
    tcfg = spec.train_config()
    return train(cfg, tcfg, examples, Path(spec.out), resume=spec.resume, val_examples=val, on_step=on_step,
                 log=log, init_from=spec.init_from)


def validate_views(examples, val, exclude: bool, log: Callable[[str], None] = print) -> None:
    """Check every view the run will use before step 1 (file headers and sizes, no decode).

    All bad files are reported at once: refused (:class:`~ghnerf.base.errors.BadViewsError`) unless ``exclude``,
    then their views are left out of ``examples`` (as targets and as sources) and of ``val``'s first example,
    and recorded (``ExampleSet.excluded``, written to run.json and every checkpoint).
    """
    bad, val_bad = examples.check_views(), val.check_views(only_first=True)
    if not (bad or val_bad):
        return
    if not exclude:
        seen, listed = set(), []
        for b in bad + val_bad:
            if (b["path"], b["view"]) not in seen:
                seen.add((b["path"], b["view"]))
                listed.append(b)
        raise BadViewsError(listed, "pass --exclude-bad-views to train without them")
    for b in bad + val_bad:
        log(f"warning: excluding view {b['view']}: {b['path']}: {b['problem']}")
    dropped = examples.exclude_views(bad) if bad else 0
    while val_bad:
        val.exclude_views(val_bad)
        val_bad = val.check_views(only_first=True)
        for b in val_bad:
            log(f"warning: excluding view {b['view']}: {b['path']}: {b['problem']}")
    log(f"warning: {len(examples.excluded) + len(val.excluded)} bad file(s) excluded (--exclude-bad-views); "
        f"{dropped} of the training examples dropped, {len(examples)} left")
