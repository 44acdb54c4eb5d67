"""Prefect flow ``evaluate``: :func:`ghnerf.eval.evaluate.evaluate_spec` with the report as UI artifacts."""

from prefect import flow, get_run_logger

from flows.artifacts import ViewProgress, publish_evaluation
from flows.params import parameters_of
from ghnerf.eval.evaluate import evaluate_spec
from ghnerf.eval.spec import EvaluateSpec


def evaluate_and_publish(spec: EvaluateSpec, out: str | None = None) -> dict:
    """Evaluate and publish the report, metric table, pictures and a link to report.md (inside a flow/task);
    with ``targets`` and ``teacher``, also where the student and that pose teacher disagree."""
    log = get_run_logger()
    report = evaluate_spec(spec, out=out, warn=log.warning,
                           on_view=ViewProgress(f"evaluating {spec.run} on its {spec.split} views"))
    publish_evaluation(report)
    log.info("metrics: %s", {k: v for k, v in report["metrics"].items() if isinstance(v, float)})
    return report


@flow(name="evaluate", log_prints=True)
@parameters_of(EvaluateSpec)
def evaluate_flow(**params) -> dict:
    """Evaluate a trained run (parameters: the fields of :class:`~ghnerf.eval.spec.EvaluateSpec`, as
    ``ghnerf evaluate --help``).

    Returns:
        the metrics, the report and metrics paths, and the checkpoint evaluated (and the disagreement summary
        with a teacher).
    """
    report = evaluate_and_publish(EvaluateSpec(**params))
    return {"metrics": report["metrics"], "metrics_path": report["metrics_path"],
            "report_path": report["report_path"], "checkpoint": report["checkpoint"],
            "teacher_comparison": report.get("teacher_comparison"), "disagreement": report.get("disagreement")}
