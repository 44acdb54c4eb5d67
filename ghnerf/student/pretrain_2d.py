"""2D pretraining of the human encoder on the source views' heatmap targets (ours; before the NeRF steps).

A distillation pipeline has the teacher's heatmaps of every training photograph. Before the student renders
anything, its encoder, 1x1 projection and source heatmap head (``StudentConfig.source_heatmap_head``) learn to
predict them in 2D: dense targets for every pixel of every view, at a fraction of a rendering step's cost. The
NeRF steps then start from an encoder whose features already locate joints (and, with ray evidence from the
source heatmap head, from heatmaps worth pooling along rays).
"""

import time
from collections.abc import Callable
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from ghnerf.base.errors import ConfigError
from ghnerf.student.augment_2d import Augment2D, ViewWarps
from ghnerf.student.data import ExampleSet
from ghnerf.student.losses import masked_mse
from ghnerf.student.model import GHNeRF
from ghnerf.student.precision import TrainingPrecision


def pretrain_source_heatmaps(model: GHNeRF, examples: ExampleSet, steps: int, lr: float, gen: torch.Generator,
                             device: torch.device, log: Callable[[str], None] = print,
                             precision: TrainingPrecision | None = None, augment: Augment2D | None = None,
                             on_step: Callable[[int, int, dict], None] | None = None) -> list[float]:
    """``steps`` Adam steps of the encoder path (encoder, projection, source heatmap head) on one random example's
    source views each, against their heatmap targets (masked MSE, as the source heatmap loss), the learning rate
    falling from ``lr`` to 0 on a cosine (at a constant 1e-3 the held-out 2D PCK of the ``ghnerf-resnet18-evidence``
    head went 0.78, 0.79, 0.59, 0.78 at steps 3000-6000: where a constant rate stops is a lottery).

    ``precision``: the autocast of the forward pass (the training run's; None: float32). ``augment``: warp each
    step's views and targets at random within these ranges (:mod:`ghnerf.student.augment_2d`; None: as they are).
    ``on_step``: called after every step with (step, steps, record), record = {"loss", "lr", "it_s"} (progress
    bars; the log gets a line at every fifth of the steps).

    Returns:
        the loss of every step.
    Raises:
        ConfigError: the model has no source heatmap head, or the examples carry no source targets.
    """
    if model.source_heatmap_head is None:
        raise ConfigError(f"{model.cfg.name}: 2D pretraining trains the source heatmap head; the config has none "
                          "(source_heatmap_head=True)")
    if not examples.source_targets:
        raise ConfigError("2D pretraining needs the source views' heatmap targets: build the examples with "
                          "source_targets=True")
    params = [p for m in model.human_path() for p in m.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    model.train()
    losses = []
    t0 = time.perf_counter()
    for step in range(steps):
        ex = examples.example(int(torch.randint(len(examples), (1,), generator=gen)))
        batch = ex.batch.to(device)
        images = batch.src_images_unmasked if getattr(model.encoder, "wants_unmasked", False) else batch.src_images
        targets, valid = ex.src_heatmaps.to(device), ex.src_joint_valid.to(device)
        if augment is not None:
            images, targets, valid = ViewWarps.draw(len(images), augment, gen).apply(images, targets, valid)
        with nullcontext() if precision is None else precision.context(device):
            pred = model.source_heatmaps(model.project_human(images)).float()
        target = F.interpolate(targets, size=pred.shape[-2:], mode="area")
        loss = masked_mse(pred, target, valid[:, :, None, None])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        rate = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step + 1, steps, {"loss": losses[-1], "lr": rate,
                                      "it_s": (step + 1) / max(time.perf_counter() - t0, 1e-9)})
        if (step + 1) % max(steps // 5, 1) == 0:
            recent = losses[-max(steps // 5, 1):]
            log(f"2D pretraining step {step + 1}/{steps}: source heatmap loss {sum(recent) / len(recent):.5f}, "
                f"lr {rate:.2e}")
    return losses
