"""``ghnerf import-enerf``: a checkpoint of the original ENeRF (zju3dv/ENeRF) as a run folder of ours.

The original saves ``{'net': state_dict, 'optim', 'scheduler', 'recorder', 'epoch'}``
(``lib/utils/net_utils.py:save_model``); only ``net`` is used. The file is read with
``torch.load(weights_only=True)``: nothing in it is executed.
"""

import pickle
from pathlib import Path

import torch

from ghnerf.base.errors import ConfigError
from ghnerf.base.fileio import file_sha256, write_json
from ghnerf.student.config import preset
from ghnerf.student.enerf_weights import convert_enerf_state_dict
from ghnerf.student.model import GHNeRF
from ghnerf.student.train import TrainConfig, save_checkpoint

ENERF_PARTS = ("feature_net.", "cost_regs.", "fields.")  # our modules that hold ENeRF's parameters


def read_enerf_state(path: Path) -> tuple[dict, dict]:
    """(``net`` state dict, what else the file says: epoch) of an original checkpoint, or a bare state dict."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise ConfigError(f"{path}: not a readable ENeRF checkpoint (torch.load with weights_only refused or "
                          f"failed: {str(exc).splitlines()[0]}); nothing was loaded") from None
    if not isinstance(ck, dict):
        raise ConfigError(f"{path}: not an ENeRF checkpoint (a {type(ck).__name__}, not a dict)")
    state = ck.get("net", ck)
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{path}: no ENeRF network state ('net') in this file")
    return state, {"epoch": ck.get("epoch")}


def import_enerf(checkpoint: str | Path, out: str | Path, config: str = "enerf", enerf_settings: bool = True,
                 pretrained: str = "none") -> Path:
    """Write ``out/checkpoints/latest.pt`` (step 0) and ``out/run.json`` from an original ENeRF checkpoint.

    Args:
        config: our preset; its ENeRF part takes the checkpoint's weights, anything else it has (human encoder,
            heads) starts from its own initialisation, ready for ``ghnerf train --init-from``.
        enerf_settings: the original's rendering settings (:meth:`StudentConfig.with_enerf_settings`) rather than
            GHNeRF's.
    Returns:
        the checkpoint written.
    Raises:
        ConfigError: unreadable file, or parameters that do not match ENeRF's network one-to-one.
    """
    checkpoint, out = Path(checkpoint), Path(out)
    if not checkpoint.is_file():
        raise ConfigError(f"{checkpoint}: no such file (an ENeRF checkpoint such as trained_model/enerf/.../latest.pth)")
    state, info = read_enerf_state(checkpoint)
    cfg = preset(config, pretrained=pretrained)
    cfg = cfg.with_enerf_settings() if enerf_settings else cfg
    torch.manual_seed(0)
    model = GHNeRF(cfg)
    ours = {k for k in model.state_dict() if k.startswith(ENERF_PARTS)}
    try:
        weights = convert_enerf_state_dict(state, ours)
    except ConfigError as exc:
        raise ConfigError(f"{checkpoint}: {exc}; nothing was written") from None
    model.load_state_dict(weights, strict=False)  # the rest keeps its initialisation
    tcfg = TrainConfig()
    opt = torch.optim.Adam(model.parameters(), lr=tcfg.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=tcfg.halving(), gamma=0.5)
    source = {"file": str(checkpoint.resolve()), "sha256": file_sha256(checkpoint), "format": "zju3dv/ENeRF net",
              "epoch": info["epoch"], "parameters": len(ours)}
    meta = {"shards": [], "dataset": None, "pretrained_weights": model.pretrained_weights, "items": 0,
            "init_from": None, "device": "cpu", "target_fusion": None, "imported_from": source}
    path = out / "checkpoints" / "latest.pt"
    save_checkpoint(path, model, opt, sched, torch.Generator().manual_seed(tcfg.seed), 0, cfg, tcfg, meta)
    write_json(out / "run.json", {"student_config": cfg.to_dict(), "train_config": tcfg.model_dump(), **meta})
    return path
