"""Recipes and key=value overrides."""

from __future__ import annotations

import pytest

from alexnet.config import Config
from alexnet.errors import UserError
from alexnet.recipes import recipe_names, resolve_config


def test_every_recipe_resolves_and_round_trips_through_a_dict():
    for name in recipe_names():
        config = resolve_config(name)
        assert config.recipe == name
        assert Config.from_dict(config.to_dict()) == config


def test_paper_recipe_is_the_papers():
    c = resolve_config("imagenet-paper")
    assert (c.model, c.batch_size, c.lr, c.momentum, c.weight_decay) == \
        ("alexnet-paper", 128, 0.01, 0.9, 5e-4)
    assert (c.optimizer, c.schedule, c.plateau_max_drops, c.epochs) == ("paper", "plateau", 3, 90)
    assert (c.crop, c.flip, c.lighting_std, c.normalize) == (224, True, 0.1, "mean-image")


def test_overrides_are_cast_to_the_field_type():
    c = resolve_config(None, ["epochs=2", "lr=0.5", "deterministic=true", "milestones=3,5",
                              "channels_last=auto", "model.lrn=false"])
    assert c.recipe == "cifar10"
    assert (c.epochs, c.lr, c.deterministic, c.milestones) == (2, 0.5, True, (3, 5))
    assert c.channels_last is None
    assert c.model_options == {"init": "cuda-convnet", "lrn": False}   # the recipe's, and ours


def test_changing_the_model_follows_its_input_size():
    assert resolve_config(None, ["model=cifar-4layer"]).crop == 32


def test_changing_the_model_keeps_the_options_the_overrides_name():
    # The recipe's own options were for its network and go; those named on the command line
    # are for the new one and stay, whatever their order (the command `alexnet experiment lrn`
    # records for its 13% arm once lost its model.init this way).
    assert resolve_config(None, ["model=cifar-conv-local-13pct"]).model_options == {}
    for overrides in (["model=cifar-conv-local-13pct", "model.init=cuda-convnet"],
                      ["model.init=cuda-convnet", "model=cifar-conv-local-13pct"]):
        assert resolve_config(None, overrides).model_options == {"init": "cuda-convnet"}


@pytest.mark.parametrize("overrides, words", [
    (["nosuchkey=1"], "valid settings: model, init_weights, data"),
    (["epochs=two"], "epochs='two' is not a valid int"),
    (["epochs"], "key=value"),
    (["schedule=fancy"], "valid schedules"),
    (["model.nosuch=1"], "valid options"),
    (["crop=64"], "larger than the stored images"),
    (["layer_decay=classifier"], "prefix=decay"),
    (["layer_decay=classifier=-1"], "prefix=decay"),
    (["layer_decay=classifier=nan"], "prefix=decay"),
    (["cutout=25"], "cutout=25 is larger than the crop"),
    (["label_smoothing=1"], "label_smoothing must be a finite number at least 0"),
])
def test_bad_overrides_are_one_sentence(overrides, words):
    with pytest.raises(UserError, match=words.replace("(", r"\(")):
        resolve_config(None, overrides)


def test_unknown_recipe_lists_the_recipes():
    with pytest.raises(UserError,
                       match="valid recipes: cifar10, cifar10-fast, cifar10-11pct, cifar10-13pct"):
        resolve_config("imagenet-2013")
