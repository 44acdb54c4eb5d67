"""The ``ghnerf`` command line with its orchestration commands (deploy, run, demo, demo-stop).

The library's commands live in :mod:`ghnerf.app.cli` (no Prefect import there); this
module adds the ones that talk to a Prefect server and is the console script.
"""

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from ghnerf.app.cli import app, console
from ghnerf.app.tables import comparison_table, metrics_table
from ghnerf.app.pipeline import PipelineConfig
from ghnerf.app.spec_options import spec_command

DEMO_OUT = Path(PipelineConfig.model_fields["out"].default)  # the main job's folder, declared in its spec


def _api_url(api_url: str | None) -> str:
    from ghnerf.app.doctor import resolve_api_url

    return resolve_api_url(api_url)


@app.command("deploy")
def deploy_cmd(api_url: Annotated[Optional[str], typer.Option(help="Prefect API (default PREFECT_API_URL or "
                                                                    "http://127.0.0.1:4200/api)")] = None) -> None:
    """Create the cpu / gpu work pools and deploy every deployment of prefect.yaml to a running server."""
    from flows.stack import deploy_all, ensure_pools, server_ok

    url = _api_url(api_url)
    if not server_ok(url):
        console.print(f"[red]no Prefect server answers at {url}[/]: start one (`prefect server start --host "
                      "127.0.0.1`) or run `make demo`, which starts one")
        raise typer.Exit(1)
    limits = ensure_pools(url)
    deploy_all(url, DEMO_OUT / "logs" / "deploy.log")
    console.print(f"pools: cpu, gpu (limit {limits['gpu']}); deployed prefect.yaml. Start workers with\n"
                  "  prefect worker start --pool cpu\n  prefect worker start --pool gpu")


@app.command("run")
def run_cmd(
    name: Annotated[str, typer.Argument(help="deployment: flow/deployment or the short flow-deployment "
                                             "(distill-renderpeople, train-default, evaluate-default, "
                                             "retrain-nightly)")],
    param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="KEY=VALUE (JSON values allowed), "
                                                                              "repeatable")] = None,
    watch: Annotated[bool, typer.Option(help="wait for the run to finish")] = True,
    api_url: Annotated[Optional[str], typer.Option(help="Prefect API")] = None,
) -> None:
    """Run a deployment by its short name (``ghnerf run distill-renderpeople``), like `prefect deployment run`."""
    from prefect.deployments import run_deployment

    from flows.runs import failure_line, resolve_deployment, run_and_wait
    from flows.stack import api_settings, server_ok, ui_url

    url = _api_url(api_url)
    if not server_ok(url):
        console.print(f"[red]no Prefect server answers at {url}[/]; run `make demo KEEP=1` or start one")
        raise typer.Exit(1)
    params = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--param {item!r}: expected KEY=VALUE")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    with api_settings(url):
        try:
            full = resolve_deployment(name)
        except LookupError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1)
        if not watch:
            run = run_deployment(full, parameters=params, timeout=0)
            console.print(f"{full}: scheduled {run.name} -> {ui_url(url)}/runs/flow-run/{run.id}")
            return
        run = run_and_wait(full, params, on_poll=lambda r: None)
    console.print(f"{full}: {run.state_name} -> {ui_url(url)}/runs/flow-run/{run.id}")
    if not run.state.is_completed():
        with api_settings(url):
            console.print(f"error: {failure_line(run)}", soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(1)


@spec_command(app, "demo", PipelineConfig)
def demo_cmd(
    cfg: PipelineConfig,
    keep: Annotated[bool, typer.Option(help="leave the server and workers running (stop: make demo-stop)")] = False,
    api_url: Annotated[Optional[str], typer.Option(help="Prefect API; a server is started there if none "
                                                        "answers")] = None,
) -> None:
    """The main job: Prefect server, pools, deployments, workers, then distill -> train -> evaluate via deployments."""
    from flows.demo import run_demo

    url = _api_url(api_url)

    def wait_for_user(ui: str) -> None:
        if sys.stdin.isatty():
            input(f"The Prefect UI is at {ui}. Press Enter to stop the server and workers this demo started... ")

    try:
        result = run_demo(cfg, url, keep=keep, console=Console(), wait_for_user=wait_for_user)
    except RuntimeError as exc:
        console.print(f"[red]demo failed:[/] {exc}")
        raise typer.Exit(1)
    Console().print(metrics_table(result["metrics"], f"{cfg.config} on the held-out views (report: "
                                                      f"{result['report']})"))
    if result.get("teacher_comparison"):
        Console().print(comparison_table(result["teacher_comparison"]))
    print(f"Prefect UI: {result['ui']}")
    for r in result["runs"]:
        print(f"  {r['deployment']}: {r['url']}")
    print(f"main job finished in {result['seconds']:.0f} s; model registry: {cfg.registry} ({result['decision']})")


@app.command("demo-stop")
def demo_stop_cmd(out: Annotated[Path, typer.Option(help="the demo's folder")] = DEMO_OUT) -> None:
    """Stop the server and workers a demo left running (only those it started)."""
    from flows.stack import stop_stack

    stop_stack(out / "stack.json", log=console.print)


def main() -> None:  # pragma: no cover
    """The console script: the CLI, ended without native teardown (see :mod:`ghnerf.app.process_exit`), with
    the CPU wait policy set before torch is loaded (:mod:`ghnerf.student.cpu_policy`)."""
    from ghnerf.student.cpu_policy import prepare_process

    prepare_process()
    from ghnerf.app.process_exit import run_command

    run_command(app)


if __name__ == "__main__":  # pragma: no cover
    main()
