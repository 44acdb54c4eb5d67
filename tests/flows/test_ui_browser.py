"""The Prefect UI as the dashboard, checked like a user would: headless Chromium on the pages of a real evaluate
run and its artifacts (report, metrics table, link), in the V1 and the V2 UI."""

import pytest

from flows.stack import free_port
from tests.browser import find_chromium, flow_run_url, render_page, with_browser

pytestmark = pytest.mark.slow


@pytest.mark.skipif(find_chromium() is None, reason="chromium not installed: run `make sysdeps` "
                                                    "(apt-get install chromium)")
def test_flow_run_page_shows_the_run_and_its_artifacts(prefect_api, student_root, tmp_path):
    from prefect.client.orchestration import get_client

    from flows.evaluate import evaluate_flow
    from flows.runs import artifacts_of
    from flows.train import train_flow

    run_dir = tmp_path / "run"
    train_flow(data=str(student_root), out=str(run_dir), config="enerf-heatmap", steps=2, pretrained="none",
               perceptual_weight=0.0, checkpoint_every=2)
    state = evaluate_flow(run=str(run_dir), data=str(student_root), max_views=2, return_state=True)
    assert state.is_completed()
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        run_name = client.read_flow_run(run_id).name
    arts = {a.key: a for a in artifacts_of(run_id)}
    report = arts["evaluation-enerf-heatmap"]
    ui = prefect_api.removesuffix("/api")

    async def look_at_run(page):
        await page.wait_for([run_name, "Completed", "Artifacts"], 60)
        await page.screenshot(tmp_path / "flow-run.png")
        await page.click_text("Artifacts")
        body = await page.wait_for(["evaluation-enerf-heatmap", "evaluation-enerf-heatmap-metrics",
                                    "evaluation-enerf-heatmap-report"], 60)
        await page.screenshot(tmp_path / "flow-run-artifacts.png")
        return body

    body = with_browser(f"{ui}/runs/flow-run/{run_id}", look_at_run, free_port())
    assert "evaluation of" in body  # the artifacts' descriptions are listed

    async def look_at_report(page):
        await page.wait_for(["PSNR", "PCK@0.2", "Lineage", "Pictures"], 60)
        await page.screenshot(tmp_path / "report-artifact.png")
        return await page.html()

    html = with_browser(f"{ui}/artifacts/artifact/{report.id}", look_at_report, free_port())
    assert html.count('src="data:image/png;base64,') >= 2  # rendered view and heatmaps are shown as pictures

    # the same run and artifacts on the V2 UI (where / redirects): the Artifacts tab lists every artifact with
    # its description, and the report's own page renders its Markdown table and pictures
    render_page(flow_run_url(prefect_api, run_id, tab="Artifacts"), tmp_path / "v2-flow-run-artifacts.png",
                [run_name, "Completed", "evaluation-enerf-heatmap-metrics", "evaluation-enerf-heatmap-report",
                 "every metric (definitions in the report)", "full report on the worker"])
    html = render_page(f"{ui}/v2/artifacts/artifact/{report.id}", tmp_path / "v2-report-artifact.png",
                       ["PSNR", "PCK@0.2", "Lineage", run_name])
    assert "<table" in html and html.count('src="data:image/png;base64,') >= 2
    for name in ("flow-run.png", "flow-run-artifacts.png", "report-artifact.png", "v2-flow-run-artifacts.png",
                 "v2-report-artifact.png"):
        assert (tmp_path / name).stat().st_size > 10_000
