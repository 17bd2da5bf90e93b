"""The UE-class model tiny_ue: a card that shares tiny's parts, its loader, its training phase."""

import json

import pytest
import torch

from meg_gym.ldm.cards import ModelError, model_card, model_geometry


def test_card_takes_every_part_but_the_unet_from_tiny():
    ue, tiny = model_card("tiny_ue"), model_card("tiny")
    assert ue["shares"] == "tiny" and ue["name"] == "tiny_ue"
    for part in ("vae", "text_encoder", "tokenizer", "scheduler"):
        assert ue["architecture"][part] == tiny["architecture"][part]
    assert ue["architecture"]["unet"]["config"]["block_out_channels"] == [32, 64, 64]
    assert ue["image_size"] == tiny["image_size"] and ue["defaults"] == tiny["defaults"]
    a, b = model_geometry("tiny_ue"), model_geometry("tiny")
    assert (a.image_size, a.latent_channels, a.latent_size) == (b.image_size, b.latent_channels, b.latent_size)
    assert "measured" not in ue or ue["measured"] != tiny["measured"]  # its own numbers, never tiny's


@pytest.mark.parametrize("bad, match", [
    ({"shares": "nope"}, "must be one of"),
    ({"shares": "tiny", "architecture": {"unet": {}, "vae": {}}}, "architecture.unet only"),
    ({"shares": 3}, "'shares' must name another model card"),
])
def test_bad_sharing_cards_are_refused(tmp_path, monkeypatch, bad, match):
    import yaml

    import meg_gym.ldm.cards as cards

    card = {"name": "mine", "weights": "shipped", "image_size": 64,
            "architecture": {"unet": model_card("tiny_ue")["architecture"]["unet"]}, **bad}
    for name in ("tiny", "tiny_ue"):
        (tmp_path / f"{name}.yaml").write_text((cards.MODELS_DIR / f"{name}.yaml").read_text())
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(card))
    monkeypatch.setattr(cards, "MODELS_DIR", tmp_path)
    with pytest.raises(ModelError, match=match):
        model_card("mine")


def _shipped():
    from meg_gym.ldm.components import SHIPPED_DIR

    if not (SHIPPED_DIR / "tiny_ue" / "meta.json").is_file():
        pytest.skip("tiny_ue is not trained here (meg-gym train-ldm --model tiny_ue --install)")


def test_shipped_tiny_ue_loads_tiny_parts_and_its_own_unet():
    _shipped()
    from meg_gym.ldm.components import load_shipped

    ue, tiny = load_shipped("tiny_ue"), load_shipped("tiny")
    for part in ("vae", "text_encoder"):
        a, b = getattr(ue, part).state_dict(), getattr(tiny, part).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert ue.scaling_factor == tiny.scaling_factor
    n_ue, n_tiny = (sum(p.numel() for p in m.unet.parameters()) for m in (ue, tiny))
    assert n_ue < n_tiny / 3


def test_a_ue_folder_trained_against_another_vae_is_refused(tmp_path):
    _shipped()
    import shutil

    from meg_gym.ldm.components import SHIPPED_DIR, load_shipped

    shutil.copytree(SHIPPED_DIR / "tiny_ue", tmp_path / "ue")
    meta = json.loads((tmp_path / "ue" / "meta.json").read_text())
    meta["scaling_factor"] *= 1.5
    (tmp_path / "ue" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="trained against another VAE"):
        load_shipped("tiny_ue", tmp_path / "ue")


def test_train_ldm_tiny_ue_trains_and_exports_the_unet_alone(tmp_path):
    from meg_gym.ldm.components import load_shipped
    from meg_gym.ldm.train import TrainSettings, train

    s = TrainSettings(phase="unet", model="tiny_ue", steps=2, batch_size=2, latent_pool=4, seed=3,
                      checkpoint_dir=tmp_path / "ck", out_dir=tmp_path / "out", threads=1)
    assert train(s)["unet_steps"] == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["SHA256SUMS", "meta.json", "unet.safetensors"]
    ue, tiny = load_shipped("tiny_ue", tmp_path / "out"), load_shipped("tiny")
    te_a, te_b = ue.text_encoder.state_dict(), tiny.text_encoder.state_dict()
    assert all(torch.equal(te_a[k], te_b[k]) for k in te_a)  # the text encoder stayed frozen
    assert (tmp_path / "ck" / "tiny_ue-unet.pt").is_file()  # its own checkpoint, beside tiny's unet.pt
    assert train(s)["unet_steps"] == 2  # resumed at its end: nothing more to do
    with pytest.raises(ValueError, match="'phase' must be 'unet'"):
        TrainSettings(phase="vae", model="tiny_ue", steps=1)
    with pytest.raises(ValueError, match="'latent_pool' must be 0"):
        TrainSettings(phase="unet", model="tiny", steps=1, latent_pool=4)
