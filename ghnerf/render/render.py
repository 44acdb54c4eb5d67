"""``ghnerf render``: a trained run turned into a free-viewpoint video with heatmap, skeleton and CSE panels.

Video frame ``i`` shows subject frame ``frames[i % F]`` from virtual camera ``i % N``
(F chosen frames, N cameras on the path; ``max(F, N)`` video frames), so by default a
moving camera circles a moving subject; one frame gives a frozen-time turn, ``--views 1``
a still camera. Each view is rendered by
:func:`ghnerf.student.inference.render_full_view` from the nearest capture cameras.
"""

import time
from collections.abc import Callable
from pathlib import Path

from ghnerf.base.fileio import write_image, write_json
from ghnerf.render.cameras_path import camera_path, default_views
from ghnerf.render.panels import PanelChoice, compose_panels
from ghnerf.render.scene import open_scene
from ghnerf.render.spec import RenderSpec
from ghnerf.render.video import Mp4Writer, write_animation
from ghnerf.render.views import source_views, view_example


def render_run(spec: RenderSpec, on_frame: Callable[[int, int], None] | None = None) -> dict:
    """Render ``spec`` into ``spec.out``; returns what ``render.json`` records.

    Args:
        on_frame: called with (frames done, total) after every video frame.
    Returns:
        paths (``mp4``, ``gif`` or None, ``frames_dir``), ``frames``, ``size`` (H, W of one panel),
        ``seconds`` (the render loop), ``fps`` (video frames per second of the loop), ``network_fps``
        (the student's forward passes only), ``first_frame_seconds``, ``cpu`` (threads and OpenMP wait policy,
        :class:`~ghnerf.student.cpu_policy.CpuPolicy`; None on GPU), and per video frame its subject frame,
        camera (K, R, T) and source views.
    Raises:
        ConfigError: bad options (subject, frames, size, overlay, source views).
    """
    from ghnerf.eval.evaluate import load_run_model
    from ghnerf.student.cpu_policy import apply_inference_policy
    from ghnerf.student.distributed import pick_device
    from ghnerf.student.inference import FrameEncodings, render_full_view

    run = Path(spec.run)
    ck_path = Path(spec.checkpoint) if spec.checkpoint else run / "checkpoints" / "latest.pt"
    device = pick_device(spec.device)
    model, ck = load_run_model(ck_path, device)
    cpu = apply_inference_policy(device)
    cfg = ck["student_config"]
    choice = PanelChoice.parse(spec.overlay, model.heatmap_head is not None, model.cse_head is not None)
    scene = open_scene(spec.data, spec.subject, spec.frames, ck["train_config"].image_scale,
                       spec.source_views or cfg.source_views, spec.size)
    F = len(scene.frames)
    N = spec.views or default_views(spec.path, F, len(scene.captures))
    cams = camera_path(spec.path, scene.captures, scene.body_centre(), N)
    total = max(F, len(cams))
    out = Path(spec.out)
    mp4 = out / "render.mp4"
    gif = out / "render.gif" if total <= spec.gif_max_frames else None
    kept, records = [], []
    encodings = FrameEncodings(model, device)  # views of a frame sharing their sources encode them once
    net_seconds, first = 0.0, None
    t0 = time.perf_counter()
    with Mp4Writer(mp4, spec.fps) as video:
        for i in range(total):
            frame = scene.sequence.frame(scene.frames[i % F])
            cam = cams[i % len(cams)]
            srcs = source_views(scene.captures, cam, scene.candidates, scene.source_views)
            ex = view_example(frame, cam, srcs, scene.scale, f"{spec.path}-{i % len(cams)}")
            t = time.perf_counter()
            r = render_full_view(model, ex, device, encoding=encodings.get(scene.frames[i % F], srcs, ex.batch))
            net_seconds += time.perf_counter() - t
            hm = None if r["heatmaps"] is None else r["heatmaps"].numpy()
            cse = None if r["cse"] is None else r["cse"].numpy()
            panel = compose_panels(r["rgb"].numpy(), hm, cse, r["box"].numpy(), choice)
            video.write(panel)
            if spec.frames_dir:
                write_image(Path(spec.frames_dir) / f"{i:05d}.png", panel)
            if gif is not None:
                kept.append(panel)
            first = first if first is not None else time.perf_counter() - t0
            records.append({"video_frame": i, "frame_index": scene.frames[i % F], "frame_id": frame.frame_id,
                            "camera": {"K": cam.K.tolist(), "R": cam.R.tolist(), "T": cam.T.tolist()},
                            "sources": [frame.views[s].name for s in srcs]})
            if on_frame:
                on_frame(i + 1, total)
    seconds = time.perf_counter() - t0
    if gif is not None:
        write_animation(gif, kept, spec.fps)
    result = {"spec": spec.model_dump(), "checkpoint": str(ck_path), "checkpoint_step": int(ck["step"]),
              "config": cfg.name, "device": str(device), "cpu": None if cpu is None else cpu.record(),
              "mp4": str(mp4), "gif": None if gif is None else str(gif),
              "frames_dir": spec.frames_dir, "frames": total, "size": list(panel.shape[:2]),
              "panel_size": [panel.shape[0], panel.shape[1] // choice.count], "panels": choice.count,
              "seconds": seconds, "fps": total / seconds, "network_fps": total / net_seconds,
              "first_frame_seconds": first, "views": records}
    write_json(out / "render.json", result)
    return result
