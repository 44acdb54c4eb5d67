"""The main job through Prefect: server, pools, deployments, workers, then distill -> train -> evaluate.

:func:`run_demo` is what ``make demo`` runs. It uses a server that already
answers at the API URL, or starts one (SQLite under ``<out>/prefect``, bound to
127.0.0.1); it creates the pools, deploys prefect.yaml, starts one worker per
pool, generates the synthetic data, and runs the deployments ``distill/<layout>``,
``train/default`` and ``evaluate/default`` with the
:class:`~ghnerf.app.pipeline.PipelineConfig` parameters, then registers the evaluated
model (so ``retrain/nightly`` fine-tunes from it). Processes it started are
listed in ``<out>/stack.json`` and stopped on exit unless ``keep`` is set.
"""

import json
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from flows.runs import progress_of, run_and_wait
from flows.stack import (
    DEFAULT_API,
    StackState,
    api_settings,
    deploy_all,
    ensure_pools,
    server_ok,
    start_server,
    start_worker,
    stop_stack,
    ui_url,
    wait_for_workers,
)
from ghnerf.app.pipeline import PipelineConfig, generate, promote_if_better
from ghnerf.base.fileio import write_json


def _absolute(cfg: PipelineConfig) -> PipelineConfig:
    return cfg.model_copy(update={"out": str(Path(cfg.out).resolve())})


def _deployment_step(console: Console, name: str, params: dict, api_url: str) -> dict:
    """Run one deployment with a live bar (state, and the run's progress artifact when it has one)."""
    with Progress(TextColumn(f"[bold]{name}[/]"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(name, total=100, info="scheduled")

        def on_poll(run):
            pct, desc = progress_of(run.id) if run.state_name == "Running" else (None, "")
            done = 100 if (run.state and run.state.is_final()) else (pct or 0)
            bar.update(task, completed=done, info=f"{run.state_name} {desc}"[:90])

        run = run_and_wait(name, params, on_poll=on_poll)
    url = f"{ui_url(api_url)}/runs/flow-run/{run.id}"
    if not run.state.is_completed():
        raise RuntimeError(f"{name} ended {run.state_name}: {run.state.message}; see {url}")
    console.print(f"  {name}: [green]{run.state_name}[/] -> {url}")
    return {"deployment": name, "flow_run_id": str(run.id), "url": url}


def run_demo(cfg: PipelineConfig, api_url: str = DEFAULT_API, keep: bool = False,
             console: Console | None = None, wait_for_user: Callable[[str], None] | None = None) -> dict:
    """Run the main job through the deployments; returns the metrics report, run links and UI address.

    Args:
        cfg: sizes and budget (see :class:`PipelineConfig`).
        api_url: Prefect API; a server is started there when none answers (loopback only).
        keep: leave the processes this started running (stop them later with ``make demo-stop``).
        wait_for_user: called with the UI address before stopping (e.g. "press Enter"), when not ``keep``.
    """
    console = console or Console()
    cfg = _absolute(cfg)
    out = Path(cfg.out)
    state_file = out / "stack.json"
    if state_file.is_file():
        console.print(f"stopping what a previous demo left running ({state_file})")
        stop_stack(state_file, log=console.print)
    state = StackState(api_url)
    t0 = time.monotonic()
    with api_settings(api_url):
        try:
            if server_ok(api_url):
                console.print(f"Prefect server: using the one at {ui_url(api_url)}")
            else:
                console.print(f"Prefect server: starting one at {ui_url(api_url)} (SQLite in {out / 'prefect'})")
                state.processes.append(start_server(api_url, out / "prefect", out / "logs" / "server.log"))
                state.save(state_file)
            limits = ensure_pools(api_url)
            console.print(f"work pools: cpu (process), gpu (process, concurrency limit {limits['gpu']})")
            deploy_all(api_url, out / "logs" / "deploy.log")
            console.print("deployed prefect.yaml: distill/renderpeople, distill/zju, train/default, "
                          "evaluate/default, retrain/nightly")
            for pool in ("cpu", "gpu"):
                state.processes.append(start_worker(api_url, pool, out / "logs" / f"worker-{pool}.log"))
                state.save(state_file)
            wait_for_workers(api_url, ["cpu", "gpu"])
            console.print(f"workers online (logs in {out / 'logs'}) after {time.monotonic() - t0:.0f} s")
            with Progress(TextColumn("[bold]synthetic data[/]"), BarColumn(),
                          TextColumn("{task.completed}/{task.total}"),
                          TimeElapsedColumn(), console=console) as bar:
                task = bar.add_task("synth", total=cfg.subjects * cfg.frames)
                generate(cfg, on_frame=lambda s, f: bar.advance(task))
            runs = [_deployment_step(console, f"distill/{cfg.layout}", cfg.distill_params(), api_url)]
            spec = cfg.train_spec().model_dump(exclude={"resume", "init_from", "cse_teacher"})
            runs.append(_deployment_step(console, "train/default", spec, api_url))
            runs.append(_deployment_step(console, "evaluate/default", cfg.evaluate_params(), api_url))
            report = json.loads((Path(cfg.run) / "eval_test" / "metrics.json").read_text())
            decision = promote_if_better(cfg, report, run_id=runs[-1]["flow_run_id"])
            console.print(f"registry {cfg.registry}: {decision.action} ({decision.reason})")
            result = {"ui": ui_url(api_url), "runs": runs, "metrics": report["metrics"],
                      "teacher_comparison": report.get("teacher_comparison"),
                      "report": report["report_path"], "decision": decision.action,
                      "seconds": round(time.monotonic() - t0, 1)}
            write_json(out / "demo_result.json", result)
            return result
        finally:
            if state.processes and not keep:
                if wait_for_user is not None:
                    wait_for_user(ui_url(api_url))
                stop_stack(state_file, log=console.print)
            elif state.processes:
                console.print(f"left running: {', '.join(p.role for p in state.processes)} "
                              f"(UI {ui_url(api_url)}); stop with `make demo-stop`")
