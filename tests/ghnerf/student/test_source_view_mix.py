"""Training on a mix of source-view counts (``TrainConfig.source_view_mix``, ENeRF's train_input_views [2, 3] with
train_input_views_prob [0.9, 0.1]): the sampler's counts, the examples it builds, refusals, and a training run."""

import json
import math

import pytest
import torch
from pydantic import ValidationError
from typer.testing import CliRunner

from ghnerf.app.cli import app
from ghnerf.student.config import preset
from ghnerf.student.data import ExampleSet
from ghnerf.student.train import draw_source_views, train
from ghnerf.student.train_config import TrainConfig


def test_draws_follow_the_weights():
    gen = torch.Generator().manual_seed(0)
    n = 4000
    draws = [draw_source_views({2: 0.9, 3: 0.1}, gen) for _ in range(n)]
    assert set(draws) == {2, 3}
    share = draws.count(2) / n
    assert abs(share - 0.9) < 4 * math.sqrt(0.9 * 0.1 / n)  # 4 standard deviations of a binomial share


def test_a_zero_weight_is_never_drawn_and_weights_need_not_sum_to_one():
    gen = torch.Generator().manual_seed(1)
    draws = [draw_source_views({2: 0.0, 3: 2.0, 4: 2.0}, gen) for _ in range(400)]
    assert set(draws) == {3, 4} and 150 < draws.count(3) < 250


def test_an_empty_mix_draws_nothing():
    gen = torch.Generator().manual_seed(2)
    state = gen.get_state().clone()
    assert draw_source_views({}, gen) is None
    assert torch.equal(gen.get_state(), state)  # the random stream of runs without a mix is what it was


@pytest.mark.parametrize("mix", [{1: 1.0}, {2: -0.5, 3: 1.0}, {2: 0.0}])
def test_bad_mixes_are_refused(mix):
    with pytest.raises(ValidationError, match="source_view_mix"):
        TrainConfig(source_view_mix=mix)


def test_the_mix_is_kept_sorted_by_count():
    assert list(TrainConfig(source_view_mix={3: 0.1, 2: 0.9}).source_view_mix) == [2, 3]


def test_fewer_source_views_are_the_nearest_of_the_default_ones(student_root):
    examples = ExampleSet(student_root, "train", 3)
    for i in range(len(examples)):
        three = examples.sources(i)
        assert len(three) == 3 and examples.sources(i, 2) == three[:2]
    ex = examples.example(0, 2)
    assert ex.batch.src_images.shape[0] == 2 and ex.batch.src_K.shape == (2, 3, 3)


def test_training_draws_a_count_per_example_and_records_the_mix(student_root, tmp_path, monkeypatch):
    asked = []
    original = ExampleSet.example

    def spy(self, index, source_views=None):
        ex = original(self, index, source_views)
        asked.append((source_views, ex.batch.src_images.shape[0]))
        return ex

    monkeypatch.setattr(ExampleSet, "example", spy)
    mix = {2: 0.5, 3: 0.5}
    tcfg = TrainConfig(steps=8, rays=(16, 32), checkpoint_every=8, source_view_mix=mix, seed=5,
                       example_cache_mb=0)  # every draw builds its example
    train(preset("enerf", pretrained="none"), tcfg, ExampleSet(student_root, "train", 3), tmp_path / "run",
          log=lambda s: None)
    assert len(asked) == 8 and all(wanted == got for wanted, got in asked)  # each example as drawn
    assert {got for _, got in asked} == {2, 3}
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["train_config"]["source_view_mix"] == {"2": 0.5, "3": 0.5}


def test_the_cli_takes_the_mix_as_pairs_and_refuses_one_view(student_root, tmp_path):
    runner = CliRunner()
    base = ["train", "--config", "enerf", "--data", str(student_root), "--steps", "1", "--perceptual-weight", "0"]
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "bad"), "--source-view-mix", "1=1"])
    assert result.exit_code == 2 and "source_view_mix" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "ok"), "--source-view-mix", "2=0.9",
                                 "--source-view-mix", "3=0.1"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "ok" / "run.json").read_text())["train_config"]["source_view_mix"] == {
        "2": 0.9, "3": 0.1}


def test_the_example_cache_keeps_an_item_once_per_count(student_root):
    from ghnerf.student.example_cache import ExampleCache

    cache = ExampleCache(ExampleSet(student_root, "train", 3), megabytes=64)
    two, three = cache.example(0, 2), cache.example(0, 3)
    assert two.batch.src_images.shape[0] == 2 and three.batch.src_images.shape[0] == 3
    assert cache.example(0, 2) is two and cache.example(0, 3) is three and (cache.hits, cache.misses) == (2, 2)
