"""Captions on pictures: wrapped between words, inside their width, units spaced; the demo's channel words."""

from PIL import Image, ImageDraw

from meg_gym.config import load_scenario
from meg_gym.demo import channel_text
from meg_gym.drawing import font, wrap


def _width(text, fnt):
    return ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(text, font=fnt)


def test_wrap_breaks_between_words_and_fits_the_width():
    fnt = font(11)
    text = "a small blue fish on the left in a sandy desert with a very long caption indeed"
    lines = wrap(text, fnt, 152)
    assert len(lines) > 1
    assert " ".join(lines) == text  # every word whole, in order: no mid-word break
    assert all(_width(line, fnt) <= 152 for line in lines)


def test_wrap_splits_only_a_word_longer_than_the_line():
    fnt = font(11)
    word = "configs/calibration/a_very_long_model_folder_name.json"
    lines = wrap(f"table {word}", fnt, 80)
    assert lines[0] == "table" and "".join(lines[1:]) == word
    assert all(_width(line, fnt) <= 80 for line in lines)


def test_a_space_is_drawn_as_wide_as_a_space():
    """PIL's bitmap default drew '1268 ms 0 kbit' with a sliver of a space; the caption font does not."""
    fnt = font(11)
    assert _width("ms 0", fnt) - _width("ms0", fnt) >= 3


def test_channel_words_say_what_the_perfect_channel_is():
    perfect = channel_text(load_scenario(None, channel={"kind": "perfect"}))
    assert perfect.startswith("perfect (noiseless") and "perfect 10" not in perfect
    assert channel_text(load_scenario(None, channel={"snr_db": 5.0})) == "awgn 5 dB"
    assert channel_text(load_scenario("case_study")) == "awgn, SNR drawn per request in [-20, 20] dB"
    assert channel_text(load_scenario(None, channel={"kind": "umi"})).startswith("umi (3GPP TR 38.901")
