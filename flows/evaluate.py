"""Prefect flow ``evaluate``: :func:`ghnerf.eval.evaluate.evaluate_run` with the report as UI artifacts."""

from prefect import flow, get_run_logger

from flows.artifacts import publish_evaluation
from ghnerf.eval.evaluate import evaluate_run
from ghnerf.base.errors import ConfigError
from storage.targets import TargetStore


def evaluate_and_publish(run: str, data: str, split: str = "test", max_views: int | None = None,
                         out: str | None = None, checkpoint: str | None = None,
                         source_views: int | None = None, targets: str | None = None,
                         teacher: str | None = None) -> dict:
    """Evaluate and publish the report, metric table, pictures and a link to report.md (inside a flow/task);
    with ``targets`` and ``teacher``, also where the student and that pose teacher disagree."""
    if teacher and not targets:
        raise ConfigError("teacher needs targets: the storage root `ghnerf distill` wrote the teacher's shards to")
    teacher_store = TargetStore(targets, teacher) if teacher else None
    report = evaluate_run(run, data, split, max_views, out=out, checkpoint=checkpoint, source_views=source_views,
                          teacher_store=teacher_store)
    publish_evaluation(report)
    get_run_logger().info("metrics: %s", {k: v for k, v in report["metrics"].items() if isinstance(v, float)})
    return report


@flow(name="evaluate", log_prints=True)
def evaluate_flow(run: str, data: str, split: str = "test", max_views: int | None = None,
                  checkpoint: str | None = None, source_views: int | None = None, targets: str | None = None,
                  teacher: str | None = None) -> dict:
    """Evaluate a trained run (parameters as ``ghnerf evaluate --help``).

    Returns:
        the metrics, the report and metrics paths, and the checkpoint evaluated (and the disagreement summary
        with a teacher).
    """
    report = evaluate_and_publish(run, data, split, max_views, checkpoint=checkpoint, source_views=source_views,
                                  targets=targets, teacher=teacher)
    return {"metrics": report["metrics"], "metrics_path": report["metrics_path"],
            "report_path": report["report_path"], "checkpoint": report["checkpoint"],
            "disagreement": report.get("disagreement")}
