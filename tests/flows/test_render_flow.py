"""The Prefect ``render`` flow: the video is written and the run's page carries the GIF, a link to the MP4 and the
render's progress."""

import asyncio
import base64
import io

import pytest
from PIL import Image


@pytest.mark.slow
def test_render_flow_publishes_the_animation_and_a_link_to_the_video(tiny_run, student_root, tmp_path, prefect_api):
    from prefect.client.orchestration import get_client

    from flows.render import render_flow

    out = tmp_path / "render"
    state = render_flow(run=str(tiny_run), data=str(student_root), subject="CoreView_901", out=str(out),
                        frames="0", views=3, size=(32, 32), return_state=True)
    assert state.is_completed()
    result = state.result()
    assert result["frames"] == 3 and result["mp4"] == str(out / "render.mp4") and (out / "render.mp4").is_file()
    flow_run_id = str(state.state_details.flow_run_id)

    async def artifacts():
        async with get_client() as client:
            return await client.read_artifacts()

    runs = [a for a in asyncio.run(artifacts()) if str(a.flow_run_id) == flow_run_id]
    mine = {a.key: a for a in runs if a.key}
    assert set(mine) == {"render-coreview-901-orbit", "render-coreview-901-orbit-mp4"}
    (progress,) = [a for a in runs if a.type == "progress"]  # the frames as they were rendered
    assert float(progress.data) == pytest.approx(100.0) and "3/3" in progress.description
    assert (out / "render.mp4").resolve().as_uri() in mine["render-coreview-901-orbit-mp4"].data
    md = mine["render-coreview-901-orbit"].data
    gif = base64.b64decode(md.split("data:image/gif;base64,")[1].split(")")[0])
    with Image.open(io.BytesIO(gif)) as im:  # the embedded animation is the render's GIF
        assert im.n_frames == 3 and im.size == (96, 32)
