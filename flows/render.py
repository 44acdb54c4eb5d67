"""Prefect flow ``render``: :func:`ghnerf.render.render.render_run` with the GIF and a link to the MP4 as artifacts."""

from prefect import flow, get_run_logger

from flows.artifacts import publish_render
from ghnerf.render.render import RenderSpec, render_run

_D = {name: f.default for name, f in RenderSpec.model_fields.items()}


@flow(name="render", log_prints=True)
def render_flow(run: str, data: str, subject: str, out: str, frames: str = _D["frames"], path: str = _D["path"],
                views: int | None = None, size: tuple[int, int] | None = None, overlay: str = _D["overlay"],
                fps: float = _D["fps"], source_views: int | None = None, checkpoint: str | None = None) -> dict:
    """Free-viewpoint video of a trained run (parameters as ``ghnerf render --help``).

    Returns:
        the MP4 and GIF paths, frame count and render speed.
    """
    result = render_run(RenderSpec(run=run, data=data, subject=subject, out=out, frames=frames, path=path,
                                   views=views, size=size, overlay=overlay, fps=fps, source_views=source_views,
                                   checkpoint=checkpoint))
    publish_render(result)
    get_run_logger().info("rendered %d frames at %.2f frames/s: %s", result["frames"], result["fps"], result["mp4"])
    return {k: result[k] for k in ("mp4", "gif", "frames", "fps", "network_fps", "first_frame_seconds")}
