"""The Prefect UI checked like a user would: on the session's Prefect server, run a flow that makes one
artifact of each kind, open its flow-run page in headless Chromium and look for the run and its artifacts.
"""

import base64

import pytest

from tests.browser import find_chromium, flow_run_url, render_page

pytestmark = pytest.mark.slow

KEYS = {"probe-report": "probe markdown report", "probe-table": "probe table of shards",
        "probe-link": "probe link to the checkpoint", "probe-progress": "probe progress of the sweep"}


def _png(width: int = 24, height: int = 16, rgb: tuple[int, int, int] = (220, 40, 40)) -> bytes:
    """A tiny solid-colour PNG."""
    import cv2
    import numpy as np

    return cv2.imencode(".png", np.full((height, width, 3), rgb[::-1], np.uint8))[1].tobytes()


def _artifact_flow():
    from prefect import flow
    from prefect.artifacts import (create_link_artifact, create_markdown_artifact, create_progress_artifact,
                                   create_table_artifact)

    @flow(name="ui-probe")
    def ui_probe():
        picture = "data:image/png;base64," + base64.b64encode(_png()).decode()
        create_markdown_artifact(
            key="probe-report", description=KEYS["probe-report"],
            markdown=f"# Probe report\n\n| metric | value |\n|---|---|\n| psnr | 27.5 |\n| ssim | 0.913 |\n\n"
                     f"![red square]({picture})\n")
        create_table_artifact(key="probe-table", description=KEYS["probe-table"],
                              table=[{"shard": "s0", "views": 3}, {"shard": "s1", "views": 4}])
        create_link_artifact(key="probe-link", link="http://127.0.0.1:9/checkpoint.pt", link_text="checkpoint",
                             description=KEYS["probe-link"])
        create_progress_artifact(key="probe-progress", progress=75.0, description=KEYS["probe-progress"])

    return ui_probe


@pytest.fixture
def probe_api(request):
    """The session's Prefect server (tests/flows/conftest.py); skips before starting it when Chromium is missing."""
    if find_chromium() is None:
        pytest.skip("chromium not installed: run `make sysdeps` (apt-get install chromium)")
    return request.getfixturevalue("prefect_api")


@pytest.mark.timeout(300)
def test_flow_run_page_shows_the_run_and_its_artifacts(probe_api, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    state = _artifact_flow()(return_state=True)
    assert state.is_completed()
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        run_name = client.read_flow_run(run_id).name
        arts = {a.key: a for a in client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))}
    assert set(KEYS) <= set(arts)

    # The run's page on the Artifacts tab: the run, its state and every artifact's key and description.
    render_page(flow_run_url(probe_api, run_id, tab="Artifacts"), tmp_path / "flow-run-artifacts.png",
                [run_name, "Completed", "ui-probe", *KEYS, *KEYS.values()])

    # The markdown artifact's own page: its table is rendered and the data: URI picture is an <img>.
    ui = probe_api.removesuffix("/api")
    html = render_page(f"{ui}/v2/artifacts/artifact/{arts['probe-report'].id}", tmp_path / "report-artifact.png",
                       ["Probe report", "psnr", "27.5", "0.913", run_name])
    assert 'src="data:image/png;base64,' in html
    assert "<table" in html
    for name in ("flow-run-artifacts.png", "report-artifact.png"):
        assert (tmp_path / name).stat().st_size > 10_000
