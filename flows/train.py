"""Prefect flow ``train``: one student training run (:func:`ghnerf.student.run.run_training`) with progress in the UI.

The worker's device is used: ``cuda`` when it has one, CPU otherwise, and the
run says which (log line and artifact). Deploy it on the ``gpu`` pool, whose
concurrency limit allows one run per GPU.
"""

from pathlib import Path

from prefect import flow, get_run_logger

from flows.artifacts import TrainingProgress, publish_training, safe_key
from ghnerf.student.run import TrainSpec, run_training

_D = {name: f.default for name, f in TrainSpec.model_fields.items()}


def train_and_publish(spec: TrainSpec) -> dict:
    """Train with a progress artifact, then publish the loss table and validation picture (inside a flow/task)."""
    log = get_run_logger()
    progress = TrainingProgress(spec.steps, f"training {spec.config} into {spec.out}")
    state = run_training(spec, on_step=progress, log=log.info)
    out = Path(spec.out)
    publish_training(state.history, spec.out, f"train-{spec.config}", sorted((out / "val").glob("*.png")))
    last = state.history[-1] if state.history else {}
    return {"run": str(out), "checkpoint": str(out / "checkpoints" / "latest.pt"), "steps": state.step,
            "final_loss": last.get("loss"), "final_psnr": last.get("psnr")}


@flow(name="train", log_prints=True)
def train_flow(data: str, out: str, config: str = _D["config"], targets: str | None = None,
               teacher: str | None = None, cse_teacher: str | None = None, fuse_targets: bool = False,
               steps: int = _D["steps"],
               resume: bool = False, init_from: str | None = None, pretrained: str = _D["pretrained"],
               image_scale: float = _D["image_scale"], perceptual_weight: float | str = _D["perceptual_weight"],
               patch: int = _D["patch"], device: str = _D["device"],
               checkpoint_every: int = _D["checkpoint_every"], batch_examples: int = _D["batch_examples"],
               pretrain_2d_steps: int = _D["pretrain_2d_steps"], allow_partial_targets: bool = False,
               exclude_bad_views: bool = False, overwrite: bool = False, recompute_stale_targets: bool = False,
               storage_options: dict | None = None) -> dict:
    """Train a student (parameters as ``ghnerf train --help``); resumable with ``resume=true``.

    Returns:
        run folder, checkpoint path, steps done, final loss and PSNR.
    """
    spec = TrainSpec(config=config, data=data, out=out, targets=targets, teacher=teacher, cse_teacher=cse_teacher,
                     fuse_targets=fuse_targets, steps=steps, resume=resume, init_from=init_from,
                     pretrained=pretrained, image_scale=image_scale, perceptual_weight=perceptual_weight,
                     patch=patch, device=device, checkpoint_every=checkpoint_every, batch_examples=batch_examples,
                     pretrain_2d_steps=pretrain_2d_steps, allow_partial_targets=allow_partial_targets,
                     exclude_bad_views=exclude_bad_views, overwrite=overwrite,
                     recompute_stale_targets=recompute_stale_targets,
                     storage_options=storage_options)
    result = train_and_publish(spec)
    get_run_logger().info("trained %s: %s", safe_key(config), result)
    return result
