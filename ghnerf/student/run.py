"""One training run from a typed spec: what ``ghnerf train``, the ``train`` flow and the pipeline all call.

:class:`~ghnerf.student.train_spec.TrainSpec` holds every user-facing option with its default (the CLI
and the Prefect flow's parameters are generated from it), and :func:`run_training` turns it into a student config,
example sets and a call to
:func:`ghnerf.student.train.train`.
"""

import os
from collections.abc import Callable
from pathlib import Path

from ghnerf.base.errors import BadViewsError, DataReadError, OptionError
from ghnerf.base.kinds import HeatmapSource
from ghnerf.student.run_folder import check_run_folder, clear_run_folder
from ghnerf.student.train import TrainState
from ghnerf.student.train_spec import TrainSpec


def run_training(spec: TrainSpec, on_step: Callable[[int, dict], None] | None = None,
                 log: Callable[[str], None] = print,
                 on_pretrain_step: Callable[[int, int, dict], None] | None = None) -> TrainState:
    """Build the example sets of ``spec`` and train.

    Args:
        spec: the run.
        on_step: called after every step with (step, record) where record has loss, psnr, lr, it_s.
        log: where progress lines go.
        on_pretrain_step: called after every 2D pretraining step with (step, steps, record); record has loss, lr,
            it_s.
    Returns:
        the training state (final step and per-step history).
    Raises:
        ConfigError: inconsistent options (unknown config, ...); DataReadError: blank masks, stale targets.
    """
    from ghnerf.student.data import ExampleSet
    from ghnerf.student.train import train
    from ghnerf.target_fusion import FusionConfig
    from storage.targets import TargetStore

    must_clear = check_run_folder(spec.out, spec.resume, spec.overwrite)  # before any work
    cfg = spec.student_config()

    def store(teacher: str | None):
        if not teacher:
            return None
        ts = TargetStore(spec.targets, teacher, storage_options=spec.storage_options,
                         allow_partial=spec.allow_partial_targets)
        ts.check_inputs(spec.data)  # stale shards refused (the application recomputes them first when asked)
        return ts

    check_image_scale(spec.data, spec.image_scale)
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
    refuse_blank_masks(examples)
    tcfg = spec.train_config(cfg)
    if must_clear and int(os.environ.get("RANK", "0")) == 0:  # every check passed: the old run goes now
        log(f"--overwrite: clearing {spec.out}")
        clear_run_folder(spec.out)
    return train(cfg, tcfg, examples, Path(spec.out), resume=spec.resume, val_examples=val, on_step=on_step,
                 log=log, init_from=spec.init_from, on_pretrain_step=on_pretrain_step)


MIN_SCALED_SIDE = 32  # pixels: the feature pyramid and cost volumes work at 1/4 of the scaled image


def check_image_scale(data: str | Path, scale: float) -> None:
    """Refuse an ``image_scale`` that shrinks the dataset's smallest images below :data:`MIN_SCALED_SIDE`.

    Raises:
        OptionError: one line naming ``--image-scale``, the image size and the smallest scale that works.
    """
    from ghnerf.data import open_dataset

    reader = open_dataset(data)
    h, w = min((hw for s in reader.subjects() for hw in reader.sequence(s).image_sizes), key=min)
    if min(h, w) * scale < MIN_SCALED_SIDE:
        raise OptionError(f"invalid option --image-scale {scale:g}: the {w}x{h} (WxH) images of {data} would be "
                          f"{w * scale:.3g}x{h * scale:.3g} pixels; training needs at least {MIN_SCALED_SIDE} per "
                          f"side: use --image-scale {MIN_SCALED_SIDE / min(h, w):.3g} or more")


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


def refuse_blank_masks(examples) -> None:
    """Refuse a run in which some training subject has no foreground in any mask (colour loss 0, "PSNR 100").

    Raises:
        DataReadError: one line per such subject, naming its first mask file.
    """
    blank = examples.blank_mask_subjects()
    if blank:
        lines = [f"every mask of subject {subject} is blank ({n} read, no foreground pixel): training would learn "
                 "nothing (colour loss 0); fix or regenerate the masks" for subject, _, n in blank]
        raise DataReadError(blank[0][1], "\n".join([lines[0], *(f"{b[1]}: {line}" for b, line in
                                                               zip(blank[1:], lines[1:]))]))
