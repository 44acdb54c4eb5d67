"""The tables of ``benchmarks/enerf_core_speed.py`` from its JSON (the console table with per-stage seconds and
memory, and the README's Markdown table): seconds per case and load, minimum over rounds and calls, and the ratio
to the original's minimum under the same load. Labels are the ones the run recorded (``results["cases"]``)."""

FRAMES = ("body box", "full frame")
ONE_CALL_LABEL = "ours, one model call, ENeRF settings"


def _min(values: list) -> float:
    return min(v for run in values for v in run)


def _rows(results: dict) -> list[tuple[str, str, str, str]]:
    """(label, frame, result key, field) of every row the run has."""
    rows = []
    for frame in FRAMES:
        for case, label in results["cases"].items():
            rows.append((label, frame, case, "seconds"))
            if case == "ours-enerf":
                rows.append((ONE_CALL_LABEL, frame, case, "one_call_seconds"))
        if "original_config" in results:
            cas = results["original_config"]["cas_config"]
            rows.append((f"original ENeRF (render_if {cas['render_if']}, OMP_WAIT_POLICY "
                         f"{results['original_wait_policy']})", frame, "original", "seconds"))
        rows.append(("before (--baseline)", frame, "baseline", "seconds"))  # runs from before --baseline-cases
        baseline = results.get("baseline")
        for case, label in (baseline or {}).get("cases", {}).items():
            rows.append((f"before (--baseline at {baseline['commit']}): {label}", frame, f"baseline:{case}", "seconds"))
    render = results["render"]
    return [r for r in rows if any(f"{r[2]}/{r[1]}" in render.get(str(n), {}) for n in results["loads"])]


def _cells(results: dict, frame: str, key: str, field: str) -> list[str]:
    """Per load: seconds (minimum over rounds and calls) and the ratio to the original's minimum."""
    cells = []
    for n in (str(n) for n in results["loads"]):
        runs = results["render"].get(n, {}).get(f"{key}/{frame}")
        ref = results["render"].get(n, {}).get(f"original/{frame}")
        if not runs or field not in runs[0]:
            cells += ["-", "-"]
            continue
        t = _min([r[field] for r in runs])
        cells += [f"{t:.2f}", f"{t / _min([r['seconds'] for r in ref]):.2f}" if ref else "-"]
    return cells


def _load_names(results: dict) -> list[str]:
    return [f"+{n} busy" for n in results["loads"]]


def markdown_table(results: dict) -> str:
    """The seconds and ratios as a Markdown table (the README's)."""
    head = ["implementation", "frame"] + [f"{n} {c}" for n in _load_names(results) for c in ("s", "/ original")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, frame, key, field in _rows(results):
        lines.append("| " + " | ".join([label, frame, *_cells(results, frame, key, field)]) + " |")
    return "\n".join(lines)


def print_table(console, results: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    loads = [str(n) for n in results["loads"]]
    render = results["render"]
    title = (f"ENeRF core at {results['image_size']}², {results['source_views']} source views, {results['threads']} CPU threads; "
             f"min over {results['pairs']} interleaved rounds x {results['repeats']} call(s)")
    table = Table(title=title)
    for col in ["implementation", "frame"] + [f"{n} {c}" for n in _load_names(results) for c in ("s", "/ original")]:
        table.add_column(col)
    for col in ("features", "coarse vol", "fine vol", "fine rays", "peak RSS +MB"):
        table.add_column(col)
    for label, frame, key, field in _rows(results):
        first = render.get(loads[0], {}).get(f"{key}/{frame}", [{}])[0]
        st = first.get("stages", {}) if field == "seconds" else {}
        table.add_row(escape(label), frame, *_cells(results, frame, key, field),
                      *(f"{st[k]:.2f}" if k in st else "-" for k in ("image features", "volume 0", "volume 1",
                                                                       "fine per-ray work")),
                      f"{first['peak_rss_growth_mb']:.0f}" if field == "seconds" and first else "-")
    console.print(table)
    for n in loads:
        for frame in FRAMES:
            runs = render.get(n, {}).get(f"ours-enerf/{frame}")
            if runs and "eval_path_vs_call_max_abs_rgb" in runs[0]:
                diff = max(r["eval_path_vs_call_max_abs_rgb"] for r in runs)
                console.print(f"load {n}, {frame}: evaluation path vs one model call, largest RGB difference "
                              f"{diff:.2e}; CPU policy {runs[0]['cpu_policy']}")
        la = results["load_average"].get(n)
        if la:
            console.print(f"load {n}: load average before {la['before'][0]:.2f}, after {la['after'][0]:.2f} (1 min)")
    for key, r in results["train"].items():
        console.print(f"train {key}: {r['steps_per_second']:.3f} steps/s")
