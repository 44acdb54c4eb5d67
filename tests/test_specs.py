"""Each option is declared once, in its spec: every command's options and every flow's parameters are exactly the
spec's fields, with the spec's defaults, and a field declared by reference keeps the range of the one it refers to."""

import inspect
import json

import click
import pytest
import typer
from pydantic import ValidationError

from flows.cli import app
from ghnerf.app.distill_config import DistillSpec
from ghnerf.app.pipeline import PipelineConfig
from ghnerf.app.retrain import RetrainSpec
from ghnerf.app.spec_options import cli_fields, default_of, option_name
from ghnerf.eval.spec import EvaluateSpec
from ghnerf.export.export import ExportSpec
from ghnerf.render.spec import RenderSpec
from ghnerf.student.train_config import TrainConfig
from ghnerf.student.train_spec import TrainSpec
from ghnerf.synth.records import SynthSpec

# command path, spec, the command's own options that are not the spec's (outputs of the command itself)
COMMANDS = [
    (("train",), TrainSpec, set()),
    (("distill",), DistillSpec, {"preview"}),
    (("evaluate",), EvaluateSpec, set()),
    (("render",), RenderSpec, set()),
    (("pipeline",), PipelineConfig, set()),
    (("demo",), PipelineConfig, {"keep", "api_url"}),
    (("retrain",), RetrainSpec, set()),
    (("data", "synth"), SynthSpec, set()),
    (("export",), ExportSpec, set()),
]


def command(path: tuple[str, ...]) -> click.Command:
    cmd = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return cmd


@pytest.mark.parametrize("path, spec, own", COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_command_options_are_the_spec_fields(path, spec, own):
    params = {p.name: p for p in command(path).params if p.name != "help"}
    assert set(params) - own == set(cli_fields(spec))
    for name, field in cli_fields(spec).items():
        param = params[name]
        default = default_of(field)
        if default is inspect.Parameter.empty:
            assert param.required, name
            continue
        if isinstance(default, dict) or (default is None and isinstance(param, click.Option) and param.multiple):
            assert param.default in (None, [], ()), name  # KEY=VALUE pairs: none given means the spec's default
            continue
        assert param.default == (list(default) if isinstance(default, tuple) else default), name
        if isinstance(param, click.Option):
            assert f"--{option_name(name, field)}" in param.opts, name
            assert (field.description or "") in (param.help or ""), name


def _flows():
    from flows.distill import distill_flow
    from flows.evaluate import evaluate_flow
    from flows.render import render_flow
    from flows.retrain import retrain_flow
    from flows.train import train_flow

    return [(train_flow, TrainSpec), (distill_flow, DistillSpec), (evaluate_flow, EvaluateSpec),
            (render_flow, RenderSpec), (retrain_flow, RetrainSpec)]


@pytest.mark.parametrize("index", range(5))
def test_flow_parameters_are_the_spec_fields(index):
    flow, spec = _flows()[index]
    schema = flow.parameters
    assert set(schema.properties) == set(spec.model_fields)
    assert set(schema.required) == {n for n, f in spec.model_fields.items() if f.is_required()}
    for name, field in spec.model_fields.items():
        default = default_of(field)
        if default is not inspect.Parameter.empty:
            # as JSON holds it (the ENeRF source-view mix's int keys are strings there)
            assert schema.properties[name].get("default") == json.loads(json.dumps(default)), name
        if field.description:  # the run form describes each parameter as the command's --help does
            assert schema.properties[name].get("description") == " ".join(field.description.split()), name
    # Prefect validates a run's parameters against the spec's ranges
    required = {n: "x" for n, f in spec.model_fields.items() if f.is_required()}
    assert flow.validate_parameters(required)


def test_a_referenced_field_keeps_its_range_and_help():
    assert TrainSpec.model_fields["steps"].description == TrainConfig.model_fields["steps"].description
    with pytest.raises(ValidationError, match="steps"):
        TrainSpec(data="d", out="o", steps=0)
    with pytest.raises(ValidationError, match="image_scale"):
        PipelineConfig(image_scale=2)
    # a tighter bound given by the referring spec applies
    with pytest.raises(ValidationError, match="subjects"):
        PipelineConfig(subjects=1)


def test_freezing_without_2d_pretraining_is_refused_when_the_spec_is_read():
    """Also when fine-tuning (--init-from): the explicit values break TrainConfig's rule without reading the
    checkpoint; with auto steps the checkpoint's config decides, when the run reads it."""
    for extra in ({}, {"init_from": "missing.pt"}):
        with pytest.raises(ValidationError, match="--pretrain-2d-steps N"):
            TrainSpec(data="d", out="o", freeze_pretrained_2d=True, pretrain_2d_steps=0, **extra)
    with pytest.raises(ValidationError, match="--pretrain-2d-steps N"):  # auto: 0 for a config without its own network
        TrainSpec(data="d", out="o", config="ghnerf-mediapipe-hypotheses", freeze_pretrained_2d=True)
    assert TrainSpec(data="d", out="o", init_from="missing.pt", freeze_pretrained_2d=True).init_from == "missing.pt"


def test_train_config_is_built_from_the_spec_without_copies():
    spec = TrainSpec(data="d", out="o", steps=7, image_scale=0.25, device="cpu", checkpoint_every=3,
                     pretrain_2d_steps=2, batch_examples=2, patch=8, perceptual_weight=0.0, example_cache_mb=5.0,
                     source_view_mix={3: 0.25, 2: 0.75}, cpu_precision="float32")
    tcfg = spec.train_config()
    shared = set(TrainConfig.model_fields) & set(TrainSpec.model_fields)
    assert shared == {"steps", "image_scale", "device", "checkpoint_every", "pretrain_2d_steps", "pretrain_2d_augment",
                      "freeze_pretrained_2d", "pretrain_2d_cache",
                      "batch_examples",
                      "patch", "example_cache_mb", "source_view_mix", "cpu_precision"}
    assert tcfg.cpu_precision == "float32" and TrainSpec(data="d", out="o").train_config().cpu_precision == "auto"
    assert (tcfg.steps, tcfg.image_scale, tcfg.device, tcfg.checkpoint_every, tcfg.val_every) == (7, 0.25, "cpu", 3, 3)
    assert (tcfg.pretrain_2d_steps, tcfg.batch_examples, tcfg.example_cache_mb) == (2, 2, 5.0)
    assert tcfg.source_view_mix == {2: 0.75, 3: 0.25}
    assert tcfg.patch == 0  # no perceptual loss, no patch
    assert TrainSpec(data="d", out="o", perceptual_weight=0.01).train_config().patch == 16
