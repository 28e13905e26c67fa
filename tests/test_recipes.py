"""Every recipe resolves to the settings it always had.

`recipes_resolved.json` was written from the recipes as they stood before they became data
(issue 28): each recipe's resolved config, its description (`alexnet train --recipes`) and
its one-line summary (`alexnet train --help`). A change to a recipe is a change to this file,
made on purpose, never a side effect of reshaping the code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alexnet.config import Config
from alexnet.recipes import describe_recipe, recipe_names, recipe_summary, resolve_config

RECORDED = json.loads((Path(__file__).parent / "recipes_resolved.json").read_text())


def test_the_recipes_are_the_recorded_ones():
    assert recipe_names() == list(RECORDED)


@pytest.mark.parametrize("name", list(RECORDED))
def test_a_recipe_resolves_to_its_recorded_config_and_text(name):
    # through JSON, as config.json holds it: tuples become lists on both sides
    resolved = json.loads(json.dumps(resolve_config(name).to_dict()))
    assert resolved == RECORDED[name]["config"]
    assert describe_recipe(name) == RECORDED[name]["description"]
    assert recipe_summary(name) == RECORDED[name]["summary"]


def test_the_config_defaults_are_the_default_recipe():
    """No implicit seventh recipe: a bare `Config()` is `cifar10`."""
    assert Config().to_dict() == resolve_config("cifar10").to_dict()
