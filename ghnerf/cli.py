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

from ghnerf.base.errors import GHNeRFError, OptionError
from ghnerf.export.writers import FORMATS, formats_help
from ghnerf.app.options import output_folder, output_image, output_root, parse_options
from ghnerf.student.config import PRESETS, LossWeights, StudentConfig


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


STORAGE_OPTION_HELP = ("fsspec option of the storage root, KEY=VALUE (repeatable; JSON values allowed), e.g. "
                       "endpoint_url=http://127.0.0.1:9000 key=... secret=... anon=true")


def _storage_options(pairs: list[str] | None) -> dict | None:
    from storage.root import parse_storage_options

    try:
        return parse_storage_options(pairs)
    except GHNeRFError as exc:
        _fail(exc)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console)


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Argument(help="dataset folder to write", parser=output_folder)],
    layout: Annotated[str, typer.Option(help="zju | renderpeople")] = "zju",
    subjects: Annotated[int, typer.Option(help="number of subjects")] = 4,
    frames: Annotated[int, typer.Option(help="frames per subject")] = 10,
    cameras: Annotated[int, typer.Option(help="cameras on the ring")] = 8,
    size: Annotated[int, typer.Option(help="image height = width, pixels")] = 256,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same dataset)")] = 0,
    distortion: Annotated[Optional[bool], typer.Option(
        "--distortion/--no-distortion", help="mild radial lens distortion (ZJU only; default on for ZJU)")] = None,
    zju_naming: Annotated[str, typer.Option(help="auto | b | paren (see docs)")] = "auto",
    missing_rate: Annotated[float, typer.Option(help="share of kpts2d joints blanked, as in real ZJU")] = 0.0,
    overwrite: Annotated[bool, typer.Option(help="replace existing subject folders")] = False,
) -> None:
    """Generate procedural multi-view humans in the real ZJU-MoCap or RenderPeople layout."""
    from ghnerf.synth.generate import SynthConfig, generate_dataset

    cfg = parse_options(SynthConfig, layout=layout, subjects=subjects, frames=frames, cameras=cameras, size=size,
                        seed=seed, distortion=distortion, zju_naming=zju_naming, missing_rate=missing_rate)
    try:
        with _progress() as bar:
            task = bar.add_task(f"synth {layout}", total=subjects * frames)
            generate_dataset(cfg, out, overwrite=overwrite, on_frame=lambda s, f: bar.advance(task))
    except GHNeRFError as exc:
        _fail(exc)
    console.print(f"wrote {subjects} subject(s) x {frames} frame(s) x {cameras} camera(s) to {out}")


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


def summary_table(path: Path, summary: dict) -> Table:
    """The ``ghnerf data inspect`` table."""
    table = Table(title=f"{path} ({summary['layout']})")
    for col in ("subject", "cameras", "frames", "image HxW"):
        table.add_column(col)
    for s in summary["subjects"]:
        table.add_row(s["name"], str(s["cameras"]), str(s["frames"]), "x".join(map(str, s["image_size"])))
    return table


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


def _parse_opts(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise typer.BadParameter(f"--teacher-opt expects KEY=VALUE, got {pair!r}")
        k, v = pair.split("=", 1)
        out[k] = v
    return out


@app.command("distill")
def distill_cmd(
    dataset: Annotated[Path, typer.Option(help="dataset folder (ZJU-MoCap or RenderPeople layout)")],
    teacher: Annotated[str, typer.Option(help="teacher name (see `ghnerf teachers list`)")],
    out: Annotated[str, typer.Option(help="storage root: local folder or fsspec URL (s3://bucket/prefix)",
                                     parser=output_root)],
    stride: Annotated[int, typer.Option(help="image pixels per target cell")] = 2,
    sigma: Annotated[float, typer.Option(help="heatmap Gaussian sigma, image pixels")] = 7.0,
    frames_per_shard: Annotated[Optional[int], typer.Option(help="frames per shard (default: from --shard-mb)")] = None,
    shard_mb: Annotated[float, typer.Option(help="target shard size in MB")] = 128.0,
    max_frames: Annotated[Optional[int], typer.Option(help="only the first N frames of each subject")] = None,
    teacher_opt: Annotated[Optional[list[str]], typer.Option(help="teacher option KEY=VALUE (repeatable)")] = None,
    preview: Annotated[Optional[Path], typer.Option(help="write a preview PNG of the first new shard here",
                                                    parser=output_image)] = None,
    storage_option: Annotated[Optional[list[str]], typer.Option(help=STORAGE_OPTION_HELP)] = None,
) -> None:
    """Run a teacher over a dataset into verified Parquet shards with lineage (in-process, no Prefect server).

    A rerun skips every shard already written, repairs damaged or lost catalog entries (from the shard when it
    is intact, else by recomputing it) and removes duplicate shard files of its dataset and teacher.
    """
    from ghnerf.app.distill import DistillConfig, distill
    from teachers.consistency import shard_consistency

    options = _storage_options(storage_option)
    try:
        cfg = parse_options(DistillConfig, teacher=teacher, teacher_options=_parse_opts(teacher_opt or []),
                            stride=stride, sigma=sigma, frames_per_shard=frames_per_shard, shard_mb=shard_mb,
                            max_frames=max_frames)
        with _progress() as bar:
            task = bar.add_task(f"distill {teacher}", total=None)
            report = distill(dataset, out, cfg, consistency_fn=shard_consistency, storage_options=options,
                             on_shard=lambda r: bar.advance(task))
    except GHNeRFError as exc:
        _fail(exc)
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
        _write_preview(out, report, preview, options)
    if any(r.status == "failed" for r in report.results):
        raise typer.Exit(code=1)


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


def _write_preview(store_url: str, report, path: Path, storage_options: dict | None = None) -> None:
    from ghnerf.base.fileio import write_image
    from storage.catalog import Catalog
    from storage.root import StorageRoot
    from ghnerf.app.teacher_preview import shard_preview

    store = StorageRoot(store_url, storage_options)
    keys = [r.key for r in report.results if r.shard_path]
    if not keys:
        return
    entry = Catalog(store).find(keys[0])[-1]
    write_image(path, shard_preview(store, entry))
    console.print(f"preview: {path}")


@app.command("train")
def train_cmd(
    config: Annotated[str, typer.Option(help=f"{' | '.join(PRESETS)}, optionally +cse and/or +coord")],
    data: Annotated[Path, typer.Option(help="dataset folder (ZJU-MoCap or RenderPeople layout)")],
    out: Annotated[Path, typer.Option(help="run folder (checkpoints, validation images, history)",
                                      parser=output_folder)],
    targets: Annotated[Optional[str], typer.Option(help="storage root of distilled targets")] = None,
    teacher: Annotated[Optional[str], typer.Option(help="pose teacher whose heatmaps to learn (with --targets); "
                                                        "default: the dataset's own 2D joints")] = None,
    cse_teacher: Annotated[Optional[str], typer.Option(help="CSE teacher for the +cse head (with --targets)")] = None,
    fuse_targets: Annotated[bool, typer.Option(help="fuse the teacher's keypoints over each frame's views (robust "
                                                    "triangulation, reprojected) before training")] = False,
    steps: Annotated[int, typer.Option(help="training steps")] = 2000,
    resume: Annotated[bool, typer.Option(help="continue from OUT/checkpoints/latest.pt")] = False,
    init_from: Annotated[Optional[str], typer.Option(help="start from this checkpoint's weights (fine-tune)")] = None,
    pretrained: Annotated[str, typer.Option(help="encoder weights: auto (the local cache when present, else a random "
                                                 "init, said and recorded) | imagenet (must be present) | none | "
                                                 "PATH")] = StudentConfig.pretrained,
    image_scale: Annotated[float, typer.Option(help="image resize factor (ENeRF input_ratio)")] = 0.5,
    perceptual_weight: Annotated[str, typer.Option(help="LPIPS-VGG weight (0.01 as ENeRF; needs VGG16 weights in "
                                                        "the torch hub cache); auto: 0.01 when they are there, else "
                                                        "none (said and recorded)")] = str(LossWeights.perceptual),
    patch: Annotated[int, typer.Option(help="patch side for the perceptual loss (0: no perceptual loss)")] = 16,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    checkpoint_every: Annotated[int, typer.Option(help="steps between checkpoints")] = 500,
    batch_examples: Annotated[int, typer.Option(help="examples per step over all processes (torchrun: a multiple "
                                                     "of --nproc_per_node)")] = 1,
    pretrain_2d_steps: Annotated[int, typer.Option(help="2D pretraining steps of the encoder and its source heatmap "
                                                        "head before the NeRF steps (configs with that head, e.g. "
                                                        "ghnerf-resnet18-evidence)")] = 0,
    allow_partial_targets: Annotated[bool, typer.Option(
        help="train on the teacher shards that are there when some the catalog lists are missing or damaged "
             "(default: refuse and name them)")] = False,
    exclude_bad_views: Annotated[bool, typer.Option(
        help="leave out views whose image or mask is missing, unreadable, truncated or of the wrong size "
             "(default: refuse and list them all before step 1)")] = False,
    storage_option: Annotated[Optional[list[str]], typer.Option(help=STORAGE_OPTION_HELP)] = None,
) -> None:
    """Train a student; targets from the dataset's joints or from a teacher's shards; resumable; DDP under torchrun."""
    from ghnerf.student.run import TrainSpec, run_training

    options = _storage_options(storage_option)
    try:
        spec = parse_options(TrainSpec, config=config, data=str(data), out=str(out), targets=targets,
                             teacher=teacher, cse_teacher=cse_teacher, fuse_targets=fuse_targets, steps=steps,
                             resume=resume, init_from=init_from, pretrained=pretrained, image_scale=image_scale,
                             perceptual_weight=perceptual_weight, patch=patch, device=device,
                             checkpoint_every=checkpoint_every, batch_examples=batch_examples,
                             pretrain_2d_steps=pretrain_2d_steps, allow_partial_targets=allow_partial_targets,
                             exclude_bad_views=exclude_bad_views,
                             storage_options=options)
        with _train_progress(steps) as on_step:
            run_training(spec, on_step=on_step, log=_log)
    except GHNeRFError as exc:
        _fail(exc)
    console.print(f"checkpoints: {out / 'checkpoints'}; validation images: {out / 'val'}")


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
) -> None:
    """Convert an original ENeRF checkpoint into a run folder of ours (lineage names the file and its sha256)."""
    from ghnerf.student.enerf_import import import_enerf

    try:
        path = import_enerf(checkpoint, out, config=config, enerf_settings=enerf_settings)
    except GHNeRFError as exc:
        _fail(exc)
    console.print(f"imported {checkpoint} -> {path} (evaluate: ghnerf evaluate {out} --data D; fine-tune: "
                  f"ghnerf train --init-from {path} ...)")


@contextmanager
def _train_progress(steps: int):
    """A rich progress bar for training; yields the ``on_step`` callback."""
    with Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console) as bar:
        task = bar.add_task("train", total=steps, info="")

        def on_step(step, rec):
            bar.update(task, completed=step, info=f"loss {rec['loss']:.4f} PSNR {rec['psnr']:.1f} "
                                                  f"{rec['it_s']:.2f} it/s")

        yield on_step


@app.command("lineage")
def lineage_cmd(
    ref: Annotated[str, typer.Argument(help="checkpoint (.pt), shard file, shard key or target id")],
    store: Annotated[Optional[str], typer.Option(help="storage root the targets live in (not for checkpoints)")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    storage_option: Annotated[Optional[list[str]], typer.Option(help=STORAGE_OPTION_HELP)] = None,
) -> None:
    """The chain from a checkpoint, target or shard back to its input images and the teacher's weights."""
    from rich.tree import Tree

    from storage.lineage import resolve

    options = _storage_options(storage_option)
    if ref.endswith(".pt"):
        _checkpoint_lineage(Path(ref), as_json, storage_options=options)
        return
    if ref.endswith(".json"):
        _report_lineage(Path(ref), as_json, options)
        return
    if store is None:
        _fail(GHNeRFError("--store ROOT is needed for shards and targets"))
    try:
        info = resolve(store, ref, options)
    except GHNeRFError as exc:
        _fail(exc)
    for line in info.get("damaged_catalog_entries", []):
        _warn(line)
    if as_json:
        print(json.dumps(info, default=str))
        return
    tree = Tree(f"[bold]{info['kind']}[/] {ref}")
    if "target" in info:
        t = info["target"]
        tree.add(f"target {t['subject']}/{t['frame_id']}/{t['camera']} {t['kind']} "
                 f"(image sha256 {t['image_sha256'][:16]}..)")
    sh = info["shard"]
    node = tree.add(f"shard {sh['path']} sha256 {sh['sha256'][:16]}.. rows {sh['rows']} "
                    f"created {sh['created_at']} flow-run {sh['flow_run_id']} code {sh['code_version'][:12]}")
    te = info["teacher"]
    node.add(f"teacher {te['name']} {te['version']} weights sha256 {te['weights_sha256'][:16]}.. "
             f"config {te['config_hash']} {te['config']}")
    ds = info["dataset"]
    inp = node.add(f"dataset {ds['id']} ({ds['layout']}) {ds['root']} subject {ds['subject']} frames "
                   f"{ds['frame_ids'][0]}-{ds['frame_ids'][-1]}: {len(info['inputs'])} input files")
    images = [i for i in info["inputs"] if i["path"].lower().endswith((".jpg", ".jpeg", ".png", ".npz"))]
    others = [i for i in info["inputs"] if i not in images]
    for item in others + images[:4]:
        inp.add(f"{item['path']} sha256 {item['sha256'][:16]}..")
    if len(images) > 4:
        inp.add(f"... {len(images) - 4} more images/masks (use --json)")
    Console(width=240).print(tree, soft_wrap=True)




@app.command("evaluate")
def evaluate_cmd(
    run: Annotated[Path, typer.Argument(help="run folder written by `ghnerf train`")],
    data: Annotated[Path, typer.Option(help="dataset folder")],
    split: Annotated[str, typer.Option(help="test | train")] = "test",
    max_views: Annotated[Optional[int], typer.Option(help="evaluate at most N views")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(help="checkpoint (default RUN/checkpoints/latest.pt)")] = None,
    targets: Annotated[Optional[str], typer.Option(help="storage root of distilled targets (for CSE and "
                                                        "--teacher)")] = None,
    cse_teacher: Annotated[Optional[str], typer.Option(help="CSE teacher whose targets to compare with")] = None,
    teacher: Annotated[Optional[str], typer.Option(help="pose teacher to compare with (with --targets): where "
                                                        "student and teacher disagree, disagreement.json")] = None,
    source_views: Annotated[Optional[int], typer.Option(
        help="source views per target (default: as trained; the split's training cameras are the candidates)")] = None,
    allow_partial_targets: Annotated[bool, typer.Option(
        help="compare with the CSE shards that are there when some the catalog lists are missing or damaged "
             "(default: refuse and name them)")] = False,
    storage_option: Annotated[Optional[list[str]], typer.Option(help=STORAGE_OPTION_HELP)] = None,
) -> None:
    """Metrics (PSNR, SSIM, LPIPS, heatmap MSE, PCK@0.2, 3D joints, CSE, FPS) and a report with pictures."""
    from ghnerf.eval.evaluate import EvalOptions, evaluate_run
    from storage.targets import TargetStore

    options = _storage_options(storage_option)
    parse_options(EvalOptions, max_views=max_views, source_views=source_views)
    try:
        if (cse_teacher or teacher) and not targets:
            raise GHNeRFError("--teacher and --cse-teacher read the teacher's shards: pass --targets ROOT (the "
                              "storage root `ghnerf distill` wrote)")
        cse_store = (TargetStore(targets, cse_teacher, storage_options=options, allow_partial=allow_partial_targets)
                     if (targets and cse_teacher) else None)
        for line in (cse_store.left_out if cse_store else []):
            _warn(f"left out (--allow-partial-targets): {line}")
        teacher_store = (TargetStore(targets, teacher, storage_options=options, allow_partial=allow_partial_targets)
                         if teacher else None)
        report = evaluate_run(run, data, split, max_views, checkpoint=checkpoint, cse_store=cse_store,
                              source_views=source_views, teacher_store=teacher_store)
    except GHNeRFError as exc:
        _fail(exc)
    _print_metrics(report, split)
    if report.get("disagreement"):
        d = report["disagreement"]
        console.print(f"student vs {d['teacher']}: {d['disagreements']} disagreements on {d['views']} views, "
                      f"verdicts {d['verdicts']} -> {d['path']}")


def metrics_table(metrics: dict, title: str) -> Table:
    """The paper's metric columns (plus 3D joints and FPS) as a rich table row."""
    table = Table(title=title)
    keys = ("psnr", "ssim", "lpips", "heatmap_mse", "pck", "coco_ap", "mpjpe_volumetric_m", "mpjpe_triangulated_m",
            "fps")
    for header in ("PSNR", "SSIM", "LPIPS", "MSE", "PCK@0.2", "COCO AP", "MPJPE vol (m)", "MPJPE tri (m)", "FPS"):
        table.add_column(header)
    table.add_row(*[(f"{metrics[k]:.4f}" if isinstance(metrics.get(k), float) else
                     ("unavailable" if k == "lpips" else str(metrics.get(k)))) for k in keys])
    return table


def _print_metrics(report: dict, split: str) -> None:
    """The metric row and where the files are."""
    Console().print(metrics_table(report["metrics"], f"{report['config']} on {report['views']} {split} views"))
    console.print(f"metrics: {report['metrics_path']}; report: {report['report_path']}")


def _report_lineage(path: Path, as_json: bool, storage_options: dict | None = None) -> None:
    """metrics.json -> its checkpoint -> shards -> teacher and inputs."""
    from rich.tree import Tree

    from ghnerf.base.fileio import file_sha256

    try:
        report = json.loads(path.read_text())
        ck_path = Path(report["checkpoint"])
    except (OSError, ValueError, KeyError) as exc:
        _fail(GHNeRFError(f"{path}: not an evaluation report written by `ghnerf evaluate` ({exc})"))
    if not ck_path.is_file():
        _fail(GHNeRFError(f"{path} names checkpoint {ck_path}, which is missing"))
    digest = file_sha256(ck_path)
    if report.get("checkpoint_sha256") and digest != report["checkpoint_sha256"]:
        _fail(GHNeRFError(f"{ck_path} changed since {path} was written (sha256 differs): the report no longer "
                          "describes this file; re-run `ghnerf evaluate`"))
    head = {"report": str(path), "split": report.get("split"), "views": report.get("views"),
            "metrics": {k: v for k, v in report.get("metrics", {}).items() if isinstance(v, (int, float))}}
    tree = Tree(f"[bold]report[/] {path}: {report.get('config')} on {report.get('views')} {report.get('split')} views, "
                f"PCK {report.get('metrics', {}).get('pck')} PSNR {report.get('metrics', {}).get('psnr')}")
    _checkpoint_lineage(ck_path, as_json, parent=tree, extra=head, storage_options=storage_options)


def _checkpoint_lineage(path: Path, as_json: bool, parent=None, extra: dict | None = None,
                        storage_options: dict | None = None) -> None:
    from rich.tree import Tree

    from ghnerf.student.train import load_checkpoint
    from storage.lineage import resolve

    try:
        ck = load_checkpoint(path)
        shards = [resolve(s["store"], s["shard_path"], storage_options) for s in ck["meta"]["shards"]]
    except GHNeRFError as exc:
        _fail(exc)
    for line in sorted({d for sh in shards for d in sh.get("damaged_catalog_entries", [])}):
        _warn(line)
    info = {"checkpoint": str(path), "step": ck["step"], "config": ck["student_config"].name,
            "code_version": ck["code_version"], "dataset": ck["meta"]["dataset"],
            "pretrained_weights": ck["meta"]["pretrained_weights"], "init_from": ck["meta"].get("init_from"),
            "imported_from": ck["meta"].get("imported_from"),
            "perceptual_loss": ck["meta"].get("perceptual_loss", "not recorded (older checkpoint)"),
            "shards": shards}
    if as_json:
        print(json.dumps({**(extra or {}), **info}, default=str))
        return
    label = f"[bold]checkpoint[/] {path} step {ck['step']} config {info['config']} code {info['code_version'][:12]}"
    tree = parent.add(label) if parent is not None else Tree(label)
    if info["init_from"]:
        tree.add(f"fine-tuned from {info['init_from']}")
    if info["imported_from"]:
        src = info["imported_from"]
        tree.add(f"imported from {src['format']} checkpoint {src['file']} sha256 {src['sha256'][:16]}.. "
                 f"(epoch {src['epoch']})")
    tree.add(f"encoder weights: {info['pretrained_weights']}")
    tree.add(f"perceptual loss: {info['perceptual_loss']}")
    node = tree.add(f"dataset {info['dataset']}: targets from {len(shards)} shard(s)"
                    + ("" if shards else " (heatmaps drawn from the dataset's own 2D joints)"))
    for sh in shards:
        n = node.add(f"shard {sh['shard']['path']} sha256 {sh['shard']['sha256'][:16]}..")
        n.add(f"teacher {sh['teacher']['name']} {sh['teacher']['version']} weights sha256 "
              f"{sh['teacher']['weights_sha256'][:16]}..; {len(sh['inputs'])} input files hashed")
    Console(width=240).print(parent if parent is not None else tree, soft_wrap=True)


@store_app.command("gc")
def store_gc_cmd(
    root: Annotated[str, typer.Argument(help="storage root (local folder or fsspec URL)")],
    superseded: Annotated[bool, typer.Option(help="also remove shards superseded by a newer version of their slot "
                                                  "(their lineage stays in the catalog)")] = False,
    min_age: Annotated[float, typer.Option(help="minutes: files no catalog entry references are kept while "
                                                "younger (a running distill may be about to register them)")] = 15.0,
    dry_run: Annotated[bool, typer.Option(help="list what would be removed, remove nothing")] = False,
    storage_option: Annotated[Optional[list[str]], typer.Option(help=STORAGE_OPTION_HELP)] = None,
) -> None:
    """Remove shard files nothing serves: duplicates (runs raced), orphans (no catalog entry), interrupted writes."""
    from storage.gc import collect_garbage
    from storage.root import StorageRoot

    options = _storage_options(storage_option)
    if min_age < 0:
        _fail(OptionError(f"--min-age {min_age:g}: must be 0 or more (minutes)"))
    try:
        store = StorageRoot(root, options)
        store.check(write=False)
        report = collect_garbage(store, superseded=superseded, min_age_s=min_age * 60, dry_run=dry_run)
    except GHNeRFError as exc:
        _fail(exc)
    for d in report.damaged:
        _warn(d.message())
    verb = "would remove" if dry_run else "removed"
    for g in report.removed:
        _log(f"{verb} {store.describe(g['path'])}: {g['why']}")
    if report.kept_young:
        console.print(f"kept {len(report.kept_young)} unreferenced file(s) younger than {min_age:g} min")
    if report.kept_damaged:
        console.print(f"kept {len(report.kept_damaged)} file(s) of damaged catalog entries (rerun `ghnerf distill`)")
    console.print(f"{verb} {len(report.removed)} file(s)")


@app.command("render")
def render_cmd(
    run: Annotated[Path, typer.Argument(help="run folder written by `ghnerf train`")],
    data: Annotated[Path, typer.Option(help="dataset folder")],
    subject: Annotated[str, typer.Option(help="subject to render")],
    out: Annotated[Path, typer.Option(help="output folder: render.mp4, render.gif (short renders), render.json")],
    frames: Annotated[str, typer.Option(help="frames START:STOP[:STEP] (Python slice) or one index")] = ":",
    path: Annotated[str, typer.Option(help="orbit | interpolate | cameras")] = "orbit",
    views: Annotated[Optional[int], typer.Option(help="virtual cameras on the path (default: one per frame; 24 "
                                                      "for one frame)")] = None,
    size: Annotated[Optional[tuple[int, int]], typer.Option(help="H W of each view (default: as trained)")] = None,
    overlay: Annotated[str, typer.Option(help="panels beside RGB: none | heatmaps | skeleton | cse | all")] = "all",
    fps: Annotated[float, typer.Option(help="video frames per second")] = 15.0,
    frames_dir: Annotated[Optional[Path], typer.Option(help="also write every video frame as a PNG here")] = None,
    source_views: Annotated[Optional[int], typer.Option(help="source views per view (default: as trained)")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(help="checkpoint (default RUN/checkpoints/latest.pt)")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
) -> None:
    """Free-viewpoint video (H.264 MP4, GIF when short) with heatmap, skeleton and CSE panels."""
    from ghnerf.render.render import RenderSpec, render_run

    try:
        spec = parse_options(RenderSpec, run=str(run), data=str(data), subject=subject, out=str(out), frames=frames,
                             path=path, views=views, size=size, overlay=overlay, fps=fps,
                             frames_dir=str(frames_dir) if frames_dir else None, source_views=source_views,
                             checkpoint=str(checkpoint) if checkpoint else None, device=device)
        with _progress() as bar:
            task = bar.add_task(f"render {path}", total=None)
            result = render_run(spec, on_frame=lambda done, total: bar.update(task, completed=done, total=total))
    except GHNeRFError as exc:
        _fail(exc)
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


@app.command("export", cls=_ExportCommand)
def export_cmd(
    run: Annotated[Optional[Path], typer.Argument(help="run folder written by `ghnerf train` (or --store)")] = None,
    data: Annotated[Path, typer.Option(help="dataset folder")] = ...,
    subject: Annotated[str, typer.Option(help="subject to export")] = ...,
    fmt: Annotated[list[str], typer.Option("--format", help=formats_help())] = ...,
    out: Annotated[Path, typer.Option(help="output folder")] = ...,
    store: Annotated[Optional[str], typer.Option(help="storage root of a teacher's shards (instead of RUN)")] = None,
    teacher: Annotated[Optional[str], typer.Option(help="pose teacher whose shards to export (with --store)")] = None,
    frames: Annotated[str, typer.Option(help="frames START:STOP[:STEP] (Python slice) or one index")] = ":",
    source_views: Annotated[Optional[int], typer.Option(help="source views per view (default: as trained)")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(help="checkpoint (default RUN/checkpoints/latest.pt)")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    strict: Annotated[bool, typer.Option(help="a view missing from the source is an error (exit 2), not a "
                                              "warning")] = False,
) -> None:
    """Keypoints in one or more formats (OpenPose JSON, COCO, EasyMocap keypoints3d) from one pass over the
    views of a run or a teacher's shards."""
    from ghnerf.export.export import ExportSpec, export_keypoints

    try:
        spec = parse_options(ExportSpec, run=str(run) if run else None, data=str(data), subject=subject, format=fmt,
                             out=str(out), store=store, teacher=teacher, frames=frames, source_views=source_views,
                             checkpoint=str(checkpoint) if checkpoint else None, device=device, strict=strict)
        with _progress() as bar:
            task = bar.add_task(f"export {' '.join(spec.format)}", total=None)
            summary = export_keypoints(spec, on_view=lambda done, total: bar.update(task, completed=done,
                                                                                    total=total))
    except GHNeRFError as exc:
        _fail(exc)
    for m in summary["missing_views"]:
        _warn(f"{m['subject']} frame {m['frame_id']} camera {m['camera']} not exported: {m['reason']}")
    files = sum(len(f) for f in summary["files"].values())
    console.print(f"wrote {files} file(s) of {', '.join(summary['formats'])} under {out} ({summary['source']}, "
                  f"{summary['views_exported']} views, {summary['views_missing']} missing); "
                  f"summary: {out / 'export.json'}")


@app.command("pipeline")
def pipeline_cmd(
    out: Annotated[Path, typer.Option(help="where everything is written", parser=output_folder)] = Path(
        "pipeline_out"),
    layout: Annotated[str, typer.Option(help="synthetic layout: renderpeople | zju")] = "renderpeople",
    teacher: Annotated[str, typer.Option(help="pose teacher")] = "mediapipe",
    config: Annotated[str, typer.Option(help="student config")] = "ghnerf-resnet18",
    steps: Annotated[int, typer.Option(help="training steps")] = 300,
    subjects: Annotated[int, typer.Option(help="synthetic subjects")] = 3,
    frames: Annotated[int, typer.Option(help="frames per subject")] = 4,
    size: Annotated[int, typer.Option(help="image size")] = 128,
) -> None:
    """The main job without a Prefect server (for scripts): synth -> distill -> train -> evaluate -> registry."""
    from ghnerf.app.pipeline import PipelineConfig, run_pipeline

    try:
        cfg = parse_options(PipelineConfig, out=str(out), layout=layout, teacher=teacher, config=config,
                            steps=steps, subjects=subjects, frames=frames, size=size)
        with _train_progress(steps) as on_step:
            report = run_pipeline(cfg, log=_log, on_step=on_step)
    except GHNeRFError as exc:
        _fail(exc)
    _print_metrics(report, "test")


@app.command("retrain")
def retrain_cmd(
    registry: Annotated[Path, typer.Option(help="model registry folder (best.json, decisions/, runs/)",
                                           parser=output_folder)],
    data: Annotated[Path, typer.Option(help="dataset folder (its test split is the fixed evaluation)")],
    targets: Annotated[Optional[str], typer.Option(help="storage root of the teacher's shards")] = None,
    teacher: Annotated[Optional[str], typer.Option(help="pose teacher whose new shards trigger retraining")] = None,
    steps: Annotated[int, typer.Option(help="fine-tuning steps")] = 500,
    eval_max_views: Annotated[int, typer.Option(help="views of the fixed evaluation split")] = 8,
) -> None:
    """Fine-tune the promoted model on new shards and promote it only if better (no server; see retrain/nightly)."""
    from ghnerf.app.retrain import RetrainSpec, retrain

    try:
        spec = parse_options(RetrainSpec, registry=str(registry), data=str(data), targets=targets, teacher=teacher,
                             steps=steps, eval_max_views=eval_max_views)
        decision = retrain(spec, log=_log)
    except GHNeRFError as exc:
        _fail(exc)
    print(json.dumps({"action": decision.action, "reason": decision.reason}))


@app.command("doctor")
def doctor_cmd(
    api_url: Annotated[Optional[str], typer.Option(help="Prefect API (default PREFECT_API_URL or "
                                                        "http://127.0.0.1:4200/api)")] = None,
    store: Annotated[str, typer.Option(help="storage root to check (folder or fsspec URL)")] = "demo_out",
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
