"""Prefect flow ``train``: one student training run (:func:`ghnerf.student.run.run_training`) with progress in the UI.

The worker's device is used: ``cuda`` when it has one, CPU otherwise, and the
run says which (log line and artifact). Deploy it on the ``gpu`` pool, whose
concurrency limit allows one run per GPU.
"""

from pathlib import Path

from prefect import flow, get_run_logger

from flows.artifacts import TrainingProgress, publish_training, safe_key
from flows.params import parameters_of
from ghnerf.app.stale_targets import recompute_stale_targets
from ghnerf.student.run import run_training
from ghnerf.student.train_spec import TrainSpec


def train_and_publish(spec: TrainSpec) -> dict:
    """Train with a progress artifact, then publish the loss table and validation picture (inside a flow/task)."""
    log = get_run_logger()
    progress = TrainingProgress(spec.steps, f"training {spec.config} into {spec.out}")
    recompute_stale_targets(spec, log=log.info)
    state = run_training(spec, on_step=progress, log=log.info, on_pretrain_step=progress.pretrain_step)
    out = Path(spec.out)
    publish_training(state.history, spec.out, f"train-{spec.config}", sorted((out / "val").glob("*.png")))
    last = state.history[-1] if state.history else {}
    return {"run": str(out), "checkpoint": str(out / "checkpoints" / "latest.pt"), "steps": state.step,
            "final_loss": last.get("loss"), "final_psnr": last.get("psnr")}


@flow(name="train", log_prints=True)
@parameters_of(TrainSpec)
def train_flow(**params) -> dict:
    """Train a student (parameters: the fields of :class:`~ghnerf.student.train_spec.TrainSpec`, as
    ``ghnerf train --help``); resumable with ``resume=true``.

    Returns:
        run folder, checkpoint path, steps done, final loss and PSNR.
    """
    spec = TrainSpec(**params)
    result = train_and_publish(spec)
    get_run_logger().info("trained %s: %s", safe_key(spec.config), result)
    return result
