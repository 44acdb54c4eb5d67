"""Parameter names of the original ENeRF (zju3dv/ENeRF@5a084e9 ``lib/networks/enerf/``) mapped onto ours.

Every parameter and buffer of the original's ``network_human.Network`` (and ``network.Network``: the same modules)
has exactly one counterpart here; :func:`convert_enerf_state_dict` refuses a state dict that leaves either side
incomplete, so a checkpoint either loads whole or not at all.
"""

import re

from ghnerf.base.errors import ConfigError

# ENeRF cost-regularisation layer -> ours (cost_reg.py groups each down stage's two convolutions)
_COST_REG_LAYERS = {"conv0": "conv0", "conv1": "conv2.0", "conv2": "conv2.1", "conv3": "conv4.0", "conv4": "conv4.1",
                    "conv5": "conv6.0", "conv6": "conv6.1", "conv7": "up7", "conv9": "up9", "conv11": "up11"}
_AGG_LAYERS = {"view_fc": "view_fc", "global_fc": "global_fc", "agg_w_fc": "weight_fc", "fc": "out_fc"}

# (pattern, replacement) applied in order; the first that matches renames the key
_RULES: list[tuple[re.Pattern, object]] = [
    # ConvBnReLU / ConvBnReLU3D: .conv / .bn -> our Sequential's 0 / 1
    (re.compile(r"^feature_net\.(conv\d)\.(\d)\.(conv|bn)\.(.+)$"),
     lambda m: f"feature_net.{m[1]}.{m[2]}.{0 if m[3] == 'conv' else 1}.{m[4]}"),
    (re.compile(r"^feature_net\.toplayer\.(.+)$"), lambda m: f"feature_net.top.{m[1]}"),
    (re.compile(r"^feature_net\.((?:lat|smooth)\d\..+)$"), lambda m: f"feature_net.{m[1]}"),
    (re.compile(r"^cost_reg_(\d+)\.(conv\d+)\.(conv|bn)\.(.+)$"),
     lambda m: f"cost_regs.{m[1]}.{_COST_REG_LAYERS[m[2]]}.{0 if m[3] == 'conv' else 1}.{m[4]}"),
    (re.compile(r"^cost_reg_(\d+)\.(conv\d+)\.([01])\.(.+)$"),
     lambda m: f"cost_regs.{m[1]}.{_COST_REG_LAYERS[m[2]]}.{m[3]}.{m[4]}"),
    (re.compile(r"^cost_reg_(\d+)\.(depth_conv|feat_conv)\.0\.(.+)$"), lambda m: f"cost_regs.{m[1]}.{m[2]}.{m[3]}"),
    (re.compile(r"^nerf_(\d+)\.agg\.(\w+)\.(.+)$"), lambda m: f"fields.{m[1]}.pool.{_AGG_LAYERS[m[2]]}.{m[3]}"),
    (re.compile(r"^nerf_(\d+)\.(lr0|sigma)\.(.+)$"), lambda m: f"fields.{m[1]}.{m[2]}.{m[3]}"),
    (re.compile(r"^nerf_(\d+)\.color\.(.+)$"), lambda m: f"fields.{m[1]}.blend.{m[2]}"),
]


def enerf_name(name: str) -> str:
    """Our parameter name for an ENeRF one; ConfigError for a name the original's network does not have."""
    for pattern, repl in _RULES:
        m = pattern.match(name)
        if m:
            try:
                return repl(m)
            except KeyError:
                break
    raise ConfigError(f"{name!r} is not a parameter of ENeRF's network (lib/networks/enerf/)")


def convert_enerf_state_dict(state: dict, target_keys: set[str]) -> dict:
    """An ENeRF ``net`` state dict renamed to ours.

    Args:
        state: the original's parameters and buffers (a leading ``module.`` from DataParallel is accepted).
        target_keys: our network's ENeRF-part keys; each must be filled exactly once.
    Raises:
        ConfigError: unknown names, or parameters of ours that the checkpoint does not provide.
    """
    out = {}
    for name, value in state.items():
        ours = enerf_name(name.removeprefix("module."))
        if ours in out:
            raise ConfigError(f"two ENeRF parameters map onto {ours!r}")
        out[ours] = value
    missing = sorted(target_keys - set(out))
    extra = sorted(set(out) - target_keys)
    if missing or extra:
        raise ConfigError(f"the ENeRF checkpoint does not match this network: missing {missing[:5]}"
                          f"{' ...' if len(missing) > 5 else ''}, unexpected {extra[:5]}")
    return out
