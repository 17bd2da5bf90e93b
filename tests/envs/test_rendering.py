"""The rgb_array frame: every label inside the frame and clear of the others, a legend, a margin left blank."""

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the ids)
from envs.rendering import BACKGROUND, MULTI_H, MULTI_W, H, W, frame, frame_multi


def _overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _check(img, boxes, width, height):
    """A legend; every label inside the frame and clear of the others; nothing within 3 px of the edge."""
    assert img.shape == (height, width, 3) and img.dtype == np.uint8
    texts = [t for t, _ in boxes]
    assert "legend" in texts and any("queue backlog" in t for t in texts)
    for text, (x0, y0, x1, y1) in boxes:
        assert 0 <= x0 and x1 <= width and 0 <= y0 and y1 <= height, (text, (x0, y0, x1, y1))
    for i, (ta, a) in enumerate(boxes):
        for tb, b in boxes[i + 1:]:
            assert not _overlap(a, b), (ta, a, tb, b)
    ring = np.concatenate([img[:3].reshape(-1, 3), img[-3:].reshape(-1, 3), img[:, :3].reshape(-1, 3),
                           img[:, -3:].reshape(-1, 3)])  # the old queue bar ran off the top
    assert (ring == np.array(BACKGROUND, dtype=np.uint8)).all()


@pytest.mark.parametrize("env_id,kwargs", [
    ("MEG/SingleES-v1", {}),
    ("MEG/MultiES-v1", {}),
    ("MEG/MultiES-v1", {"num_es": 6, "es": [{"load": 0.95}]}),  # narrow columns; full queue bars
])
def test_frame_labels_fit_and_do_not_overlap(env_id, kwargs):
    env = gym.make(env_id, render_mode="rgb_array", **kwargs)
    env.reset(seed=0)
    for _ in range(6):
        env.step(env.action_space.sample())
    img, boxes = frame(env.unwrapped)
    _check(img, boxes, W, H)
    assert any(t.endswith("dB") for t, _ in boxes)
    np.testing.assert_array_equal(env.render(), img)  # render() is this frame


@pytest.mark.parametrize("module,kwargs", [("multi_ue", {}), ("es_coordination", {}),
                                           ("multi_ue", {"num_ues": 16})])
def test_pettingzoo_frames_have_a_legend_and_fit(module, kwargs):
    import importlib

    env = importlib.import_module(f"envs.{module}").parallel_env(render_mode="rgb_array", **kwargs)
    env.reset(seed=0)
    for _ in range(3):
        env.step({a: env.action_space(a).sample() for a in env.agents})
    img, boxes = frame_multi(env)
    _check(img, boxes, MULTI_W, MULTI_H)
    np.testing.assert_array_equal(env.render(), img)
