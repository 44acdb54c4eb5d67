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
from flows.params import parameters_of
from flows.train import train_and_publish
from ghnerf.app.retrain import RetrainSpec, retrain
from ghnerf.eval.spec import EvaluateSpec


@task(name="train-candidate", cache_policy=NO_CACHE)
def train_task(spec):
    return train_and_publish(spec)


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_task(run, data, split, max_views, out, checkpoint):
    return evaluate_and_publish(EvaluateSpec(run=str(run), data=data, split=split, max_views=max_views,
                                             checkpoint=str(checkpoint)), out=str(out))


@flow(name="retrain", log_prints=True)
@parameters_of(RetrainSpec)
def retrain_flow(**params) -> dict:
    """Retrain when new shards exist; promote only a better model (parameters: the fields of
    :class:`~ghnerf.app.retrain.RetrainSpec`, as ``ghnerf retrain --help``; the guard: PSNR may not drop by more
    than 0.5 dB).

    Returns:
        the decision (action, reason, both metric sets).
    """
    spec = RetrainSpec(**params)
    log = get_run_logger()
    decision = retrain(spec, train_fn=train_task, evaluate_fn=evaluate_task, run_id=flow_run.get_id(), log=log.info)
    publish_decision(decision)
    return decision.model_dump(mode="json")
