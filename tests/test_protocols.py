"""The protocol table: all 11 MEG protocols, validated as data."""

import pytest

from meg_gym.protocols import MULTI_ES, PROTOCOLS, SINGLE_ES, ProtocolError, Run, Send, place, validate

ALL = ["full_ue", "full_es", "uieg", "eiug", "ciag", "esuc", "uidg", "diug", "dsuc", "uidcg", "dcsuc"]


def test_table_has_all_eleven():
    assert list(PROTOCOLS) == ALL
    assert SINGLE_ES == tuple(ALL[:6]) and MULTI_ES == tuple(ALL[6:])


# where each protocol runs its heavy stages, from MEG.md's tables
PLACEMENT = {
    "full_ue": {"encode_image": {"ue"}, "denoise": {"ue"}, "decode": {"ue"}},
    "full_es": {"encode_image": {"es"}, "denoise": {"es"}, "decode": {"es"}},
    "uieg": {"encode_image": {"ue"}, "denoise": {"es"}, "decode": {"es"}},
    "eiug": {"encode_image": {"es"}, "denoise": {"es"}, "decode": {"ue"}},
    "ciag": {"encode_image": {"ue"}, "denoise": {"es"}, "decode": {"ue"}},
    "esuc": {"encode_image": {"es"}, "denoise": {"es"}, "sketch": {"es"}, "complete": {"ue"}},
    "uidg": {"encode_image": {"ue"}, "denoise": {"es"}, "decode": {"es"}, "select": {"ue"}},
    "diug": {"encode_image": {"es"}, "denoise": {"es"}, "decode": {"ue"}, "select": {"ue"}},
    "dsuc": {"denoise": {"es"}, "sketch": {"es"}, "select": {"ue"}, "complete": {"ue"}},
    "uidcg": {"encode_image": {"ue"}, "split_seed": {"ue"}, "denoise_tiles": {"es"}, "crop_seed": {"es"},
              "merge_seed": {"ue"}, "decode": {"ue"}},
    "dcsuc": {"split_image": {"ue"}, "denoise_tiles": {"es"}, "sketch": {"es"}, "crop_sketch": {"es"},
              "merge_sketch": {"ue"}, "complete": {"ue"}},
}


@pytest.mark.parametrize("name", ALL)
def test_stages_placed_where_the_protocol_says(name):
    es_ids = (2, 5) if PROTOCOLS[name].multi_es else (4,)
    plan = place(name, es_ids)
    where: dict[str, set[str]] = {}
    for s in plan.steps:
        if isinstance(s, Run):
            where.setdefault(s.stage, set()).add("ue" if s.on == "ue" else "es")
    for stage, nodes in PLACEMENT[name].items():
        assert where[stage] == nodes, (stage, where[stage])
    ran_on = {s.on for s in plan.steps if isinstance(s, Run) and s.on != "ue"}
    assert ran_on <= {f"es{i}" for i in es_ids}
    if PROTOCOLS[name].multi_es:  # every ES takes part
        assert ran_on == {f"es{i}" for i in es_ids}


def test_full_ue_sends_nothing():
    assert not [s for s in place("full_ue", (0,)).steps if isinstance(s, Send)]


def test_multi_es_uses_every_es_once_per_stage():
    plan = place("uidcg", (0, 1, 2))
    denoise = [s.on for s in plan.steps if isinstance(s, Run) and s.stage == "denoise_tiles"]
    assert sorted(denoise) == ["es0", "es1", "es2"]
    tiles = [s for s in plan.steps if isinstance(s, Send) and s.tensor.startswith("seed_tile")]
    assert [(s.tensor, s.dst) for s in tiles] == [("seed_tile0", "es0"), ("seed_tile1", "es1"), ("seed_tile2", "es2")]


@pytest.mark.parametrize("name,es_ids,msg", [
    ("ciag", (0, 1), "exactly 1"),
    ("uidg", (0,), "at least 2"),
    ("uidg", (1, 1), "distinct"),
    ("nope", (0,), "must be one of"),
])
def test_bad_placement(name, es_ids, msg):
    with pytest.raises(ProtocolError, match=msg):
        place(name, es_ids)


def test_validation_catches_missing_input():
    steps = (Run("encode_image", "ue"), Send("seed", "ue", "es0"), Run("denoise", "es0"))
    with pytest.raises(ProtocolError, match="'text_emb' is not on es0"):
        validate(steps, "broken")


def test_validation_catches_send_of_absent_tensor():
    with pytest.raises(ProtocolError, match="sends 'gen_seed' it does not have"):
        validate((Send("gen_seed", "ue", "es0"),), "broken")


def test_validation_requires_output_on_ue():
    with pytest.raises(ProtocolError, match="never delivers 'output'"):
        validate((Run("encode_image", "ue"),), "broken")


def test_cooperative_tiles_take_a_step_budget_and_count_their_steps():
    """UIDCG / DCSUC denoise in one joint stage (every ES its strip, all steps): a step budget reaches
    it, and ``info['es_steps']`` counts its steps (int(steps x strength)), the ESs generating the
    whole image."""
    from meg_gym.ldm.settings import GenerationSettings
    from meg_gym.protocols import generation_split, get_protocol

    s = GenerationSettings()
    assert generation_split("uidcg", s) == (12, 0, 1.0)  # 20 steps at strength 0.6
    assert generation_split("uidcg@10", s) == (6, 0, 1.0)
    assert generation_split("dcsuc", s)[0] == 12
    tiles = [st for st in get_protocol("uidcg@10").steps if getattr(st, "stage", None) == "denoise_tiles"]
    assert tiles and all(dict(st.params)["steps"] == 10 for st in tiles)
