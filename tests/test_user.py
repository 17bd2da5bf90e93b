"""The user who picks among the parallel protocols' candidates without the scoring classifier."""

import numpy as np
import pytest
import torch

from meg_gym.config import ConfigError, load_scenario
from meg_gym.ldm.data import Scene, caption, render, sample_scenes
from meg_gym.quality.user import GlanceUser, first_candidate, make_user


def test_glance_user_sees_what_rendered_scenes_hold():
    """On clean scenes the glance user reads background, colour and position right, size mostly."""
    scenes = sample_scenes(np.random.default_rng(5), 200)
    user = GlanceUser()
    seen = [user.attributes(x) for x in render(scenes)]
    for name, floor in (("background", 0.95), ("color", 0.95), ("position", 0.95), ("size", 0.7)):
        assert np.mean([s.get(name) == getattr(sc, name) for s, sc in zip(seen, scenes)]) >= floor, name
    assert all("shape" not in s for s in seen)  # the glance does not judge the shape


def test_glance_user_picks_the_candidate_the_prompt_describes():
    want = Scene("circle", "red", "sea", "left", "large")
    wrong = [Scene("circle", "green", "desert", "right", "small"), Scene("circle", "white", "night", "center", "large")]
    for k in range(3):  # the matching one at every place
        scenes = [*wrong[:k], want, *wrong[k:]]
        candidates = [torch.from_numpy(x)[None] for x in render(scenes)]
        assert GlanceUser()(candidates, caption(want)) == k


def test_make_user_and_the_scenario_key():
    scorer = object()
    assert make_user("scorer", scorer) is scorer
    assert make_user("first", scorer) is first_candidate and first_candidate([1, 2], "") == 0
    assert isinstance(make_user("glance", scorer), GlanceUser)
    assert load_scenario({"workload": {"selection": "first"}}).workload.selection == "first"
    with pytest.raises(ConfigError) as err:
        load_scenario({"workload": {"selection": "oracle"}})
    msg = str(err.value)
    assert "'workload.selection'" in msg and "'glance'" in msg and "'oracle'" in msg and "\n" not in msg


@pytest.mark.parametrize("selection", ["first", "glance"])
def test_the_system_selects_with_the_user_not_the_scorer(selection):
    """UIDG's pick is the user's: the first candidate, or the glance user's choice among the candidates."""
    from meg_gym.system import Decision, MegSystem
    from meg_gym.workload import sample_request

    system = MegSystem({"num_es": 3, "channel": {"kind": "perfect"}, "workload": {"selection": selection},
                        "generation": {"steps": 4}})
    req = sample_request(np.random.default_rng(1))
    out = system.serve(req, Decision("uidg", (0, 1, 2)), use_queues=False)
    want = 0 if selection == "first" else GlanceUser()(list(out.candidates), req.prompt)
    assert out.selected_index == want
    assert torch.equal(out.output, out.candidates[want][0].float())
