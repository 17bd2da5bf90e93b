"""The procedural scenes: deterministic, captioned, parseable."""

import numpy as np
import pytest

from meg_gym.ldm.data import ATTRIBUTES, caption, edit_scene, parse_caption, render, sample_scenes, vocabulary


def test_deterministic_under_seed():
    a = render(sample_scenes(np.random.default_rng(1), 8))
    b = render(sample_scenes(np.random.default_rng(1), 8))
    assert a.shape == (8, 3, 64, 64) and a.dtype == np.float32
    assert np.array_equal(a, b) and 0.0 <= a.min() and a.max() <= 1.0


def test_caption_round_trip_every_attribute():
    for scene in sample_scenes(np.random.default_rng(2), 500):
        assert parse_caption(caption(scene)) == scene.attributes()


def test_blue_sea_is_not_an_object_colour():
    assert parse_caption("a small red fish on the left in a dark blue sea")["color"] == "red"
    assert parse_caption("make it yellow") == {"color": "yellow"}


def test_edit_changes_exactly_one_attribute():
    rng = np.random.default_rng(3)
    for scene in sample_scenes(rng, 50):
        edited = edit_scene(rng, scene)
        diff = [k for k in ATTRIBUTES if getattr(scene, k) != getattr(edited, k)]
        assert len(diff) == 1
    with pytest.raises(ValueError, match="'attribute' must be one of"):
        edit_scene(rng, scene, "mood")


def test_vocabulary_covers_captions():
    vocab = set(vocabulary())
    for scene in sample_scenes(np.random.default_rng(4), 200):
        assert set(caption(scene).split()) <= vocab
