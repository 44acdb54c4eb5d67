"""The ``ghnerf`` command line (typer). Each sub-command is a thin call into the library."""

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ghnerf.errors import GHNeRFError

app = typer.Typer(help="GHNeRF-distill: teachers -> Parquet targets -> generalizable human NeRF.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Datasets: generate synthetic humans, inspect real or synthetic folders.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console(stderr=True)


def _fail(exc: GHNeRFError) -> None:
    typer.secho(f"error: {exc}", err=True, fg="red")
    raise typer.Exit(code=2)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console)


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Argument(help="dataset folder to write")],
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
    from pydantic import ValidationError

    from ghnerf.synth.generate import SynthConfig, generate_dataset

    try:
        cfg = SynthConfig(layout=layout, subjects=subjects, frames=frames, cameras=cameras, size=size, seed=seed,
                          distortion=distortion, zju_naming=zju_naming, missing_rate=missing_rate)
    except ValidationError as exc:
        err = exc.errors()[0]
        typer.secho(f"error: invalid option {'.'.join(map(str, err['loc'])) or ''}: {err['msg']}", err=True, fg="red")
        raise typer.Exit(code=2)
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
    """Detect the layout and summarise subjects, cameras, frames and image size."""
    from ghnerf.data import open_dataset, summarize

    try:
        summary = summarize(open_dataset(path, layout))
    except GHNeRFError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps(summary))
        return
    table = Table(title=f"{path} ({summary['layout']})")
    for col in ("subject", "cameras", "frames", "image HxW"):
        table.add_column(col)
    for s in summary["subjects"]:
        table.add_row(s["name"], str(s["cameras"]), str(s["frames"]), "x".join(map(str, s["image_size"])))
    Console().print(table)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()


@app.command("demo")
def demo(
    out: Annotated[Path, typer.Option(help="where the demo writes everything")] = Path("demo_out"),
    subjects: Annotated[int, typer.Option(help="synthetic subjects per layout")] = 3,
    frames: Annotated[int, typer.Option(help="frames per subject")] = 6,
    cameras: Annotated[int, typer.Option(help="cameras per subject")] = 8,
    size: Annotated[int, typer.Option(help="image size")] = 256,
) -> None:
    """The main job on built-in synthetic data: generate both layouts, read them back, draw previews."""
    from ghnerf.data import load_view, open_dataset, summarize
    from ghnerf.fileio import write_image
    from ghnerf.synth.generate import SynthConfig, generate_dataset
    from ghnerf.viz import contact_sheet, draw_skeleton

    try:
        for layout in ("zju", "renderpeople"):
            root = out / "data" / layout
            cfg = SynthConfig(layout=layout, subjects=subjects, frames=frames, cameras=cameras, size=size)
            with _progress() as bar:
                task = bar.add_task(f"synth {layout}", total=subjects * frames)
                generate_dataset(cfg, root, overwrite=True, on_frame=lambda s, f: bar.advance(task))
            reader = open_dataset(root)
            summary = summarize(reader)
            table = Table(title=f"{root} ({summary['layout']})")
            for col in ("subject", "cameras", "frames", "image HxW"):
                table.add_column(col)
            for s in summary["subjects"]:
                table.add_row(s["name"], str(s["cameras"]), str(s["frames"]), "x".join(map(str, s["image_size"])))
            Console().print(table)
            seq = reader.sequence(reader.subjects()[0])
            frame = seq.frame(0)
            tiles = []
            for v in frame.views:
                img = (load_view(v).image * 255).round().astype("uint8")
                tiles.append(draw_skeleton(img, v.joints2d) if v.joints2d is not None else img)
            preview = out / f"preview_{layout}.png"
            write_image(preview, contact_sheet(tiles, columns=4, labels=[v.name for v in frame.views]))
            console.print(f"preview (undistorted views + ground-truth skeleton): {preview}")
    except GHNeRFError as exc:
        _fail(exc)
