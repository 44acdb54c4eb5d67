"""Prefect flow ``render``: :func:`ghnerf.render.render.render_run` with the GIF and a link to the MP4 as artifacts."""

from prefect import flow, get_run_logger

from flows.artifacts import ViewProgress, publish_render
from flows.params import parameters_of
from ghnerf.render.render import render_run
from ghnerf.render.spec import RenderSpec


@flow(name="render", log_prints=True)
@parameters_of(RenderSpec)
def render_flow(**params) -> dict:
    """Free-viewpoint video of a trained run (parameters: the fields of :class:`~ghnerf.render.spec.RenderSpec`, as
    ``ghnerf render --help``).

    Returns:
        the MP4 and GIF paths, frame count and render speed.
    """
    spec = RenderSpec(**params)
    result = render_run(spec, on_frame=ViewProgress(f"rendering {spec.run} ({spec.path})"))
    publish_render(result)
    get_run_logger().info("rendered %d frames at %.2f frames/s: %s", result["frames"], result["fps"], result["mp4"])
    return {k: result[k] for k in ("mp4", "gif", "frames", "fps", "network_fps", "first_frame_seconds")}
