"""The ``ghnerf`` command line (typer). Each sub-command is a thin call into the library."""

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperCommand, TyperGroup

from ghnerf.app.distill_config import DistillSpec
from ghnerf.app.options import output_image
from ghnerf.app.pipeline import PipelineConfig
from ghnerf.app.retrain import RetrainSpec
from ghnerf.app.spec_options import spec_command
from ghnerf.app.tables import comparison_table, distill_table, metrics_table, summary_table
from ghnerf.base.errors import GHNeRFError, OptionError
from ghnerf.base.key_values import parse_key_values
from ghnerf.eval.spec import EvaluateSpec
from ghnerf.export.export import ExportSpec
from ghnerf.export.writers import FORMATS
from ghnerf.render.spec import RenderSpec
from ghnerf.student.train_spec import TrainSpec
from ghnerf.synth.records import SynthSpec
from storage.root import STORAGE_OPTION_HELP


def _fail(exc: GHNeRFError) -> None:
    """Print ``exc`` as one line per problem (``error: ...``; indented lines continue the one above, e.g. a list
    of files) and exit with code 2, no traceback."""
    for line in str(exc).splitlines() or [type(exc).__name__]:
        typer.secho(line if line[:1].isspace() else f"error: {line}", err=True, fg="red")
    raise typer.Exit(code=2)


class OneLineErrors(TyperGroup):
    """The root command: a user error from any sub-command (a :class:`GHNeRFError`, or an option value typer
    rejects) ends in :func:`_fail` (one line per problem, exit code 2), never in a traceback."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except GHNeRFError as exc:
            _fail(exc)
        except typer.BadParameter as exc:
            _fail(OptionError(exc.format_message() if exc.param is not None else exc.message))


app = typer.Typer(help="GHNeRF-distill: teachers -> Parquet targets -> generalizable human NeRF.",
                  no_args_is_help=True, pretty_exceptions_enable=False, cls=OneLineErrors)
data_app = typer.Typer(help="Datasets: generate synthetic humans, inspect real or synthetic folders.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")
teachers_app = typer.Typer(help="Teachers: list them and whether each can run here.", no_args_is_help=True)
app.add_typer(teachers_app, name="teachers")
store_app = typer.Typer(help="Storage roots of distilled targets: clean up.", no_args_is_help=True)
app.add_typer(store_app, name="store")
console = Console(stderr=True)


def _warn(line: str) -> None:
    typer.secho(f"warning: {line}", err=True, fg="yellow")


def _log(line: str) -> None:
    """A progress line of a library call, never wrapped (paths stay whole) and without rich markup."""
    if line.startswith("warning: "):
        _warn(line.removeprefix("warning: "))
    else:
        console.print(line, soft_wrap=True, markup=False, highlight=False)


def _storage_options(pairs: list[str] | None) -> dict | None:
    return parse_key_values(pairs, "storage-option", "endpoint_url=http://127.0.0.1:9000")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console)


@spec_command(data_app, "synth", SynthSpec)
def data_synth(spec: SynthSpec) -> None:
    """Generate procedural multi-view humans in the real ZJU-MoCap or RenderPeople layout."""
    from ghnerf.synth.generate import generate_dataset

    with _progress() as bar:
        task = bar.add_task(f"synth {spec.layout}", total=spec.subjects * spec.frames)
        generate_dataset(spec.config(), spec.out, overwrite=spec.overwrite, on_frame=lambda s, f: bar.advance(task))
    console.print(f"wrote {spec.subjects} subject(s) x {spec.frames} frame(s) x {spec.cameras} camera(s) to {spec.out}")


@data_app.command("inspect")
def data_inspect(
    path: Annotated[Path, typer.Argument(help="dataset root or one subject folder")],
    layout: Annotated[Optional[str], typer.Option(help="zju | renderpeople (detected when omitted)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Detect the layout and summarise subjects, cameras, frames and image size; warn about subject folders that
    cannot be read and images whose size differs from their camera's (``--json``: ``skipped``, ``odd_sized_images``)."""
    from ghnerf.data import open_dataset, summarize
    from ghnerf.data.open import dataset_warnings

    try:
        reader = open_dataset(path, layout)
        summary = summarize(reader)
    except GHNeRFError as exc:
        _fail(exc)
    for line in dataset_warnings(reader, summary):
        _warn(line)
    if as_json:
        print(json.dumps(summary))
        return
    Console().print(summary_table(path, summary))


@teachers_app.command("list")
def teachers_list() -> None:
    """Every registered teacher, its target kinds, and whether it is usable here (and why not)."""
    from ghnerf.app.teacher_registry import REGISTRY, availability

    table = Table(title="teachers")
    for col in ("name", "kinds", "usable", "details"):
        table.add_column(col, overflow="fold")
    for name, spec in REGISTRY.items():
        ok, reason = availability(name)
        table.add_row(name, spec.kinds, "[green]yes[/]" if ok else "[red]no[/]", f"{spec.description}. {reason}")
    Console(width=160).print(table)


@spec_command(app, "distill", DistillSpec)
def distill_cmd(
    spec: DistillSpec,
    preview: Annotated[Optional[Path], typer.Option(help="write a preview PNG of the first new shard here",
                                                    parser=output_image)] = None,
) -> None:
    """Run a teacher over a dataset into verified Parquet shards with lineage (in-process, no Prefect server).

    A rerun skips every shard already written, repairs damaged or lost catalog entries (from the shard when it
    is intact, else by recomputing it) and removes duplicate shard files of its dataset and teacher.
    """
    from ghnerf.app.distill import distill
    from teachers.consistency import shard_consistency

    with _progress() as bar:
        task = bar.add_task(f"distill {spec.teacher}", total=None)
        report = distill(spec.dataset, spec.out, spec.config(), consistency_fn=shard_consistency,
                         storage_options=spec.storage_options, on_shard=lambda r: bar.advance(task))
    for line in report.warnings():
        _warn(line)
    Console(width=160).print(distill_table(report))
    for r in report.results:
        for f in r.failures:
            typer.secho(f"failed {f['key']}: {f['error']}", err=True, fg="yellow")
    restored = report.counts().get("restored", 0)
    if restored:
        _log(f"restored {restored} catalog entr{'y' if restored == 1 else 'ies'} from intact shard files")
    if report.garbage and report.garbage.removed:
        _log(f"removed {len(report.garbage.removed)} duplicate shard file(s): "
                      + ", ".join(g["path"] for g in report.garbage.removed))
    if preview is not None:
        _write_preview(spec.out, report, preview, spec.storage_options)
    if any(r.status == "failed" for r in report.results):
        raise typer.Exit(code=1)


def _write_preview(store_url: str, report, path: Path, storage_options: dict | None = None) -> None:
    from ghnerf.app.teacher_preview import shard_preview
    from ghnerf.base.fileio import write_image
    from storage.catalog import Catalog
    from storage.root import StorageRoot

    store = StorageRoot(store_url, storage_options)
    keys = [r.key for r in report.results if r.shard_path]
    if not keys:
        return
    entry = Catalog(store).find(keys[0])[-1]
    write_image(path, shard_preview(store, entry))
    console.print(f"preview: {path}")


@spec_command(app, "train", TrainSpec)
def train_cmd(spec: TrainSpec) -> None:
    """Train a student; targets from the dataset's joints or from a teacher's shards; resumable; DDP under torchrun."""
    from ghnerf.app.stale_targets import recompute_stale_targets
    from ghnerf.student.run import run_training

    recompute_stale_targets(spec, log=_log)
    with _train_progress(spec.steps) as bar:
        run_training(spec, on_step=bar.step, log=_log, on_pretrain_step=bar.pretrain_step)
    console.print(f"checkpoints: {Path(spec.out) / 'checkpoints'}; validation images: {Path(spec.out) / 'val'}")


@app.command("import-enerf")
def import_enerf_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="an original ENeRF checkpoint (zju3dv/ENeRF: its 'net' state "
                                                    "dict, e.g. trained_model/enerf/zjumocap/latest.pth)")],
    out: Annotated[Path, typer.Option(help="run folder to write (checkpoints/latest.pt at step 0, run.json)")],
    config: Annotated[str, typer.Option(help="our preset whose ENeRF part takes the weights; its encoder and "
                                             "heads keep their initialisation (fine-tune with train --init-from)")]
    = "enerf",
    enerf_settings: Annotated[bool, typer.Option("--enerf-settings/--ghnerf-settings", help="the original's "
                                                 "settings (2 fine samples, 2 source views, softmax depth, level "
                                                 "loss weights 0.1 / 1) or GHNeRF's")] = True,
    overwrite: Annotated[bool, typer.Option(help="clear OUT first when it holds another run")] = False,
) -> None:
    """Convert an original ENeRF checkpoint into a run folder of ours (lineage names the file and its sha256)."""
    from ghnerf.student.enerf_import import import_enerf

    try:
        path = import_enerf(checkpoint, out, config=config, enerf_settings=enerf_settings, overwrite=overwrite)
    except GHNeRFError as exc:
        _fail(exc)
    console.print(f"imported {checkpoint} -> {path} (evaluate: ghnerf evaluate {out} --data D; fine-tune: "
                  f"ghnerf train --init-from {path} ...)")


class TrainBars:
    """Rich progress bars of a training run: its 2D pretraining when it runs one (``pretrain_step``), then its steps
    (``step``); each bar appears at its phase's first step."""

    def __init__(self, progress: Progress, steps: int):
        self.progress, self.steps = progress, steps
        self._pretrain = self._train = None

    def pretrain_step(self, step: int, steps: int, rec: dict) -> None:
        if self._pretrain is None:
            self._pretrain = self.progress.add_task("2D pretraining", total=steps, info="")
        self.progress.update(self._pretrain, completed=step,
                             info=f"source heatmap loss {rec['loss']:.5f} {rec['it_s']:.1f} it/s")

    def step(self, step: int, rec: dict) -> None:
        if self._train is None:
            self._train = self.progress.add_task("train", total=self.steps, info="")
        self.progress.update(self._train, completed=step,
                             info=f"loss {rec['loss']:.4f} PSNR {rec['psnr']:.1f} {rec['it_s']:.2f} it/s")


@contextmanager
def _train_progress(steps: int):
    """Rich progress bars for a training of ``steps`` steps; yields their :class:`TrainBars`."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=console) as progress:
        yield TrainBars(progress, steps)


@app.command("lineage")
def lineage_cmd(
    ref: Annotated[str, typer.Argument(help="checkpoint (.pt), shard file, shard key or target id")],
    store: Annotated[Optional[str], typer.Option(help="storage root the targets live in (not for checkpoints)")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    storage_option: Annotated[Optional[list[str]], typer.Option(help=STORAGE_OPTION_HELP)] = None,
) -> None:
    """The chain from a checkpoint, target or shard back to its input images and the teacher's weights."""
    from ghnerf.app.lineage_view import target_tree
    from storage.lineage import lineage_warnings, ref_problem, resolve

    options = _storage_options(storage_option)
    if ref.endswith(".pt"):
        _checkpoint_lineage(Path(ref), as_json, storage_options=options)
        return
    if ref.endswith(".json"):
        _report_lineage(Path(ref), as_json, options)
        return
    problem = ref_problem(ref, store)
    if problem:
        _fail(GHNeRFError(problem))
    try:
        info = resolve(store, ref, options)
    except GHNeRFError as exc:
        _fail(exc)
    for line in info.get("damaged_catalog_entries", []) + lineage_warnings(info):
        _warn(line)
    if as_json:
        print(json.dumps(info, default=str))
        return
    Console(width=240).print(target_tree(ref, info), soft_wrap=True)


@spec_command(app, "evaluate", EvaluateSpec)
def evaluate_cmd(spec: EvaluateSpec) -> None:
    """Metrics (PSNR, SSIM, LPIPS, heatmap MSE, PCK@0.2, 3D joints, CSE, FPS) and a report with pictures."""
    from ghnerf.eval.evaluate import evaluate_spec

    with _progress() as bar:
        task = bar.add_task(f"evaluate {spec.split}", total=None)
        report = evaluate_spec(spec, warn=_warn, on_view=lambda done, total: bar.update(task, completed=done,
                                                                                        total=total))
    _print_metrics(report, spec.split)
    if report.get("disagreement"):
        d = report["disagreement"]
        console.print(f"student vs {d['teacher']}: {d['disagreements']} disagreements on {d['views']} views, "
                      f"verdicts {d['verdicts']} -> {d['path']}")


def _print_metrics(report: dict, split: str) -> None:
    """The metric row and where the files are."""
    Console().print(metrics_table(report["metrics"], f"{report['config']} on {report['views']} {split} views"))
    if report.get("teacher_comparison"):
        Console().print(comparison_table(report["teacher_comparison"]))
    console.print(f"metrics: {report['metrics_path']}; report: {report['report_path']}")


def _report_lineage(path: Path, as_json: bool, storage_options: dict | None = None) -> None:
    """metrics.json -> its checkpoint -> shards -> teacher and inputs."""
    from ghnerf.app.lineage_view import report_head

    try:
        ck_path, head, tree = report_head(path)
    except GHNeRFError as exc:
        _fail(exc)
    _checkpoint_lineage(ck_path, as_json, parent=tree, extra=head, storage_options=storage_options)


def _checkpoint_lineage(path: Path, as_json: bool, parent=None, extra: dict | None = None,
                        storage_options: dict | None = None) -> None:
    from ghnerf.app.lineage_view import checkpoint_info, checkpoint_tree

    try:
        info, warnings = checkpoint_info(path, storage_options)
    except GHNeRFError as exc:
        _fail(exc)
    for line in warnings:
        _warn(line)
    if as_json:
        print(json.dumps({**(extra or {}), **info}, default=str))
        return
    Console(width=240).print(checkpoint_tree(info, parent), soft_wrap=True)


@store_app.command("gc")
def store_gc_cmd(
    root: Annotated[str, typer.Argument(help="storage root (local folder or fsspec URL)")],
    superseded: Annotated[bool, typer.Option(help="also remove shards superseded by a newer version of their slot "
                                                  "(their lineage stays in the catalog)")] = False,
    min_age: Annotated[float, typer.Option(help="minutes: files no catalog entry references are kept while "
                                                "younger (a running distill may be about to register them)")] = 15.0,
    dry_run: Annotated[bool, typer.Option(help="list what would be removed, remove nothing")] = False,
    yes: Annotated[bool, typer.Option(help="remove even when more than 5 files would go (else they are only "
                                           "listed, as with --dry-run)")] = False,
    storage_option: Annotated[Optional[list[str]], typer.Option(help=STORAGE_OPTION_HELP)] = None,
) -> None:
    """Remove shard files nothing serves: duplicates (runs raced), orphans (no catalog entry), interrupted writes.

    Refuses without a readable catalog; touches only files named like shards; more than 5 files only with --yes."""
    from storage.gc import GC_CONFIRM_ABOVE, collect_garbage
    from storage.root import StorageRoot

    options = _storage_options(storage_option)
    if not 0 <= min_age < float("inf"):  # NaN fails too: it would make every file old enough
        _fail(OptionError(f"--min-age {min_age:g}: must be 0 or more (minutes)"))
    try:
        store = StorageRoot(root, options)
        store.check(write=False)
        report = collect_garbage(store, superseded=superseded, min_age_s=min_age * 60, dry_run=dry_run,
                                 confirm_above=None if yes else GC_CONFIRM_ABOVE)
    except GHNeRFError as exc:
        _fail(exc)
    for d in report.damaged:
        _warn(d.message())
    verb = "would remove" if dry_run or report.held_back else "removed"
    for g in report.removed:
        _log(f"{verb} {store.describe(g['path'])}: {g['why']}")
    if report.kept_young:
        console.print(f"kept {len(report.kept_young)} unreferenced file(s) younger than {min_age:g} min")
    if report.kept_damaged:
        console.print(f"kept {len(report.kept_damaged)} file(s) of damaged catalog entries (rerun `ghnerf distill`)")
    if report.kept_foreign:
        console.print(f"left {len(report.kept_foreign)} file(s) not named like shards untouched")
    console.print(f"{verb} {len(report.removed)} file(s)"
                  + (f": more than {GC_CONFIRM_ABOVE}, so nothing was removed; check the list and rerun with --yes"
                     if report.held_back else ""))


@spec_command(app, "render", RenderSpec)
def render_cmd(spec: RenderSpec) -> None:
    """Free-viewpoint video (H.264 MP4, GIF when short) with heatmap, skeleton and CSE panels."""
    from ghnerf.render.render import render_run

    with _progress() as bar:
        task = bar.add_task(f"render {spec.path}", total=None)
        result = render_run(spec, on_frame=lambda done, total: bar.update(task, completed=done, total=total))
    h, w = result["panel_size"]
    console.print(f"rendered {result['frames']} frames of {h}x{w} x {result['panels']} panels in "
                  f"{result['seconds']:.1f} s: {result['fps']:.2f} frames/s (network {result['network_fps']:.2f}/s, "
                  f"first frame after {result['first_frame_seconds']:.1f} s, {result['device']})")
    console.print(f"video: {result['mp4']}" + (f"; animation: {result['gif']}" if result["gif"] else ""))


class _ExportCommand(TyperCommand):
    """``--format a b c``: the values after ``--format`` that name formats are all its values."""

    def parse_args(self, ctx, args):
        out, state = [], 0  # 0: other arguments, 1: next is --format's value, 2: after a --format value
        for arg in args:
            if state == 2 and arg in FORMATS:
                out += ["--format", arg]
                continue
            out.append(arg)
            state = 1 if arg == "--format" else 2 if state == 1 or arg.startswith("--format=") else 0
        return super().parse_args(ctx, out)


@spec_command(app, "export", ExportSpec, cls=_ExportCommand)
def export_cmd(spec: ExportSpec) -> None:
    """Keypoints in one or more formats (OpenPose JSON, COCO, EasyMocap keypoints3d) from one pass over the
    views of a run or a teacher's shards."""
    from ghnerf.export.export import export_keypoints

    with _progress() as bar:
        task = bar.add_task(f"export {' '.join(spec.format)}", total=None)
        summary = export_keypoints(spec, on_view=lambda done, total: bar.update(task, completed=done, total=total))
    for m in summary["missing_views"]:
        _warn(f"{m['subject']} frame {m['frame_id']} camera {m['camera']} not exported: {m['reason']}")
    files = sum(len(f) for f in summary["files"].values())
    out = Path(spec.out)
    console.print(f"wrote {files} file(s) of {', '.join(summary['formats'])} under {out} ({summary['source']}, "
                  f"{summary['views_exported']} views, {summary['views_missing']} missing); "
                  f"summary: {out / 'export.json'}")


@spec_command(app, "pipeline", PipelineConfig)
def pipeline_cmd(cfg: PipelineConfig) -> None:
    """The main job without a Prefect server (for scripts): synth -> distill -> train -> evaluate -> registry."""
    from ghnerf.app.pipeline import run_pipeline

    with _train_progress(cfg.steps) as bar:
        report = run_pipeline(cfg, log=_log, on_step=bar.step, on_pretrain_step=bar.pretrain_step)
    _print_metrics(report, "test")


@spec_command(app, "retrain", RetrainSpec)
def retrain_cmd(spec: RetrainSpec) -> None:
    """Fine-tune the promoted model on new shards and promote it only if better (no server; see retrain/nightly)."""
    from ghnerf.app.retrain import retrain

    decision = retrain(spec, log=_log)
    print(json.dumps({"action": decision.action, "reason": decision.reason}))


@app.command("doctor")
def doctor_cmd(
    api_url: Annotated[Optional[str], typer.Option(help="Prefect API (default PREFECT_API_URL or "
                                                        "http://127.0.0.1:4200/api)")] = None,
    store: Annotated[str, typer.Option(help="storage root to check (folder or fsspec URL); default: the main job's "
                                            "folder")] = PipelineConfig.model_fields["out"].default,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """What works here and how to fix what does not; exit 1 when the main job cannot run."""
    from ghnerf.app.doctor import main_job_blocked, run_checks

    checks = run_checks(api_url, store)
    blocked = main_job_blocked(checks)
    if as_json:
        print(json.dumps({"main_job_can_run": not blocked, "checks": [c.to_dict() for c in checks]}))
    else:
        table = Table(title="ghnerf doctor")
        for col in ("check", "status", "detail", "fix"):
            table.add_column(col, overflow="fold")
        colour = {"ok": "green", "warn": "yellow", "fail": "red"}
        for c in checks:
            table.add_row(c.name, f"[{colour[c.status]}]{c.status}[/]", c.detail, c.fix or "")
        Console(width=200).print(table)
        console.print("[red]the main job cannot run until the failures above are fixed[/]" if blocked
                      else "[green]the main job can run here[/] (`make demo`)")
    if blocked:
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
