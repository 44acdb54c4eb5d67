"""The rich tables the commands print: a dataset summary, a distillation report, evaluation metrics and the student
beside its teacher."""

from pathlib import Path

from rich.table import Table

from ghnerf.eval.metric_names import table_rows


def summary_table(path: Path, summary: dict) -> Table:
    """The ``ghnerf data inspect`` table."""
    table = Table(title=f"{path} ({summary['layout']})")
    for col in ("subject", "cameras", "frames", "image HxW"):
        table.add_column(col)
    for s in summary["subjects"]:
        table.add_row(s["name"], str(s["cameras"]), str(s["frames"]), "x".join(map(str, s["image_size"])))
    return table


def distill_table(report) -> Table:
    table = Table(title=f"distill {report.teacher} -> {report.dataset_id}: {report.counts()}")
    for col in ("subject", "frames", "status", "rows", "failed views", "detected", "reproj px (median)",
                "outlier views", "L/R swaps", "seconds"):
        table.add_column(col)
    for r in report.results:
        c = r.consistency or {}
        table.add_row(r.subject, f"{r.frame_ids[0]}-{r.frame_ids[-1]}", r.status, str(r.rows), str(len(r.failures)),
                      f"{c['teacher_detected_views']}/{c['teacher_views']}" if "teacher_views" in c else "-",
                      f"{c['median_error_px']:.1f}" if c.get("median_error_px") is not None else "-",
                      str(c.get("outlier_views", "-")), str(len(c.get("swap_suspects", []))) if c else "-",
                      f"{r.seconds:.2f}")
    return table


def metrics_table(metrics: dict, title: str) -> Table:
    """The metrics table (:data:`~ghnerf.eval.metric_names.TABLE_COLUMNS`) as a rich table row."""
    headers, cells = table_rows(metrics)
    table = Table(title=title)
    for header in headers:
        table.add_column(header)
    table.add_row(*cells)
    return table


def comparison_table(comparison: dict) -> Table:
    """The student beside its teacher and the triangulated teacher on the same views, as a rich table."""
    from ghnerf.eval.teacher_comparison import COLUMNS, comparison_cells

    table = Table(title=f"student beside its teacher {comparison['teacher']} ({comparison['views']} views)")
    for header in COLUMNS:
        table.add_column(header)
    for r in comparison["rows"]:
        table.add_row(*comparison_cells(r))
    return table
