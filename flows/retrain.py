"""Prefect flow ``retrain``: :func:`ghnerf.app.retrain.retrain` with training and evaluation as tasks.

Scheduled nightly by the ``retrain/nightly`` deployment: skips when the catalog
has no shards newer than the promoted checkpoint, otherwise fine-tunes from it,
evaluates on the fixed split and promotes only if the metrics are better; the
decision and both metric sets go to the registry and to a UI artifact.
"""

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.artifacts import publish_decision
from flows.evaluate import evaluate_and_publish
from flows.train import train_and_publish
from ghnerf.app.retrain import RetrainSpec, retrain

_D = {name: f.default for name, f in RetrainSpec.model_fields.items()}


@task(name="train-candidate", cache_policy=NO_CACHE)
def train_task(spec):
    return train_and_publish(spec)


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_task(run, data, split, max_views, out, checkpoint):
    return evaluate_and_publish(str(run), data, split, max_views, out=str(out), checkpoint=str(checkpoint))


@flow(name="retrain", log_prints=True)
def retrain_flow(registry: str, data: str, targets: str | None = None, teacher: str | None = None,
                 config: str = _D["config"], steps: int = _D["steps"], image_scale: float = _D["image_scale"],
                 pretrained: str = _D["pretrained"], eval_max_views: int | None = _D["eval_max_views"],
                 primary_metric: str = "pck", min_improvement: float = 0.0, device: str = _D["device"]) -> dict:
    """Retrain when new shards exist; promote only a better model.

    Args:
        registry: model registry folder (best.json, decisions/, runs/).
        data: dataset folder; its test split (first ``eval_max_views`` views) is the fixed evaluation.
        targets, teacher: storage root and pose teacher whose new shards trigger retraining.
        config, pretrained: student config and encoder weights of a first model (when none is promoted).
        steps: fine-tuning steps.
        primary_metric, min_improvement: the promotion rule (guard: PSNR may not drop by more than 0.5 dB).
    Returns:
        the decision (action, reason, both metric sets).
    """
    from ghnerf.app.model_registry import PromotionRule

    spec = RetrainSpec(registry=registry, data=data, targets=targets, teacher=teacher, config=config, steps=steps,
                       image_scale=image_scale, pretrained=pretrained, eval_max_views=eval_max_views, device=device,
                       rule=PromotionRule(primary=primary_metric, min_improvement=min_improvement))
    log = get_run_logger()
    decision = retrain(spec, train_fn=train_task, evaluate_fn=evaluate_task, run_id=flow_run.get_id(), log=log.info)
    publish_decision(decision)
    return decision.model_dump(mode="json")
