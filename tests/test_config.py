"""Scenario configs: defaults, merging, one-line errors, frozen objects, round trips."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from meg_gym import config
from meg_gym.config import (
    DEFAULT_SCENARIO,
    SCENARIOS_DIR,
    ConfigError,
    Scenario,
    load_scenario,
    scenario_to_dict,
)

ALL_PROTOCOLS = ["full_ue", "full_es", "uieg", "eiug", "ciag", "esuc", "uidg", "diug", "dsuc", "uidcg", "dcsuc"]
SINGLE_ES = ALL_PROTOCOLS[:6]


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- defaults and merging ----------------------------------------------------------------
def test_defaults_load():
    sc = load_scenario()
    assert sc == Scenario() == load_scenario({}) == load_scenario(DEFAULT_SCENARIO)
    assert sc.model == "tiny" and sc.backend == "live" and sc.num_es == 2
    assert sc.bandwidth_hz == 20.0e6
    assert sc.channel.kind == "awgn" and sc.channel.snr_db == 10.0
    assert len(sc.es) == 2 and all(es.device == "edge_gpu" and es.load == 0.3 for es in sc.es)
    assert sc.ue.flops_per_s is None and sc.ue.position_m == (50.0, 0.0)
    assert sc.generation.steps == 20 and sc.generation.strength == 0.6
    assert sc.reward.weights.latency == 0.5
    assert list(sc.protocols) == ALL_PROTOCOLS


def test_default_scenario_is_plain_data_and_matches_shipped_default():
    assert yaml.safe_load(yaml.safe_dump(DEFAULT_SCENARIO)) == DEFAULT_SCENARIO  # plain data only
    assert len(DEFAULT_SCENARIO["es"]) == 1  # one entry, applied to every ES
    shipped = yaml.safe_load((SCENARIOS_DIR / "default.yaml").read_text())
    assert shipped == DEFAULT_SCENARIO
    assert load_scenario(SCENARIOS_DIR / "default.yaml") == load_scenario()


def test_partial_file_overrides_only_its_keys(tmp_path):
    text = "seed: 7\nchannel: {snr_db: 3.5}\ngeneration:\n  steps: 30\nreward: {weights: {energy: 0.0}}\n"
    path = write(tmp_path, text)
    sc, base = load_scenario(path), load_scenario()
    assert sc.seed == 7 and sc.channel.snr_db == 3.5 and sc.generation.steps == 30
    assert sc.reward.weights.energy == 0.0
    assert sc.channel.kind == base.channel.kind
    assert sc.generation.strength == base.generation.strength
    assert sc.reward.weights.quality == base.reward.weights.quality
    assert sc.model_copy(update={"seed": 0, "channel": base.channel, "generation": base.generation,
                                 "reward": base.reward}) == base


def test_empty_file_is_all_defaults(tmp_path):
    assert load_scenario(write(tmp_path, "")) == load_scenario()


def test_single_es_entry_expands_to_num_es():
    sc = load_scenario({"num_es": 3, "es": [{"load": 0.5, "device": "datacenter_gpu"}]})
    assert len(sc.es) == 3 and isinstance(sc.es, tuple)
    assert all(es.load == 0.5 and es.device == "datacenter_gpu" and es.tx_power_dbm is None for es in sc.es)


def test_es_entries_per_server_merge_with_defaults():
    sc = load_scenario({"num_es": 2, "es": [{"load": 0.1}, {"flops_per_s": 5e12}]})
    assert sc.es[0].load == 0.1 and sc.es[0].flops_per_s is None
    assert sc.es[1].load == 0.3 and sc.es[1].flops_per_s == 5e12


def test_overrides_mapping_and_path_forms_agree(tmp_path):
    path = write(tmp_path, "channel: {snr_db: 20.0}\nnum_es: 3\n")
    a = load_scenario(path, channel={"snr_db": 5.0})
    b = load_scenario(path, channel__snr_db=5.0)
    c = load_scenario(path, **{"channel.snr_db": 5.0})
    assert a == b == c
    assert a.channel.snr_db == 5.0 and a.num_es == 3  # the file's other keys stay


def test_overrides_replace_lists():
    sc = load_scenario("multi_es", protocols=["uieg", "uidg"])
    assert sc.protocols == ("uieg", "uidg")


def test_changing_channel_kind_drops_the_old_kinds_parameters():
    sc = load_scenario(None, channel={"kind": "umi"})  # default channel holds snr_db, which umi refuses
    assert sc.channel.kind == "umi" and sc.channel.snr_db is None
    assert sc.channel.params() == config.CHANNEL_DEFAULTS["umi"]
    sc = load_scenario("multi_es", channel__fading="rician")  # same kind: key by key
    assert sc.channel.fading == "rician" and sc.channel.carrier_hz == 3.5e9


def test_one_es_defaults_to_single_es_protocols():
    assert list(load_scenario(num_es=1).protocols) == SINGLE_ES


@pytest.mark.parametrize("text", ["5e6", "5.0e6", "5.0e+6", "5_000_000"])
def test_yaml_scientific_notation_is_a_number(tmp_path, text):
    # plain YAML 1.1 reads 5e6 and 5.0e6 as strings; scenario files read them as numbers
    assert load_scenario(write(tmp_path, f"bandwidth_hz: {text}\n")).bandwidth_hz == 5e6


def test_model_may_be_a_local_folder(tmp_path):
    assert load_scenario(model=str(tmp_path)).model == str(tmp_path)


def test_shipped_scenario_by_bare_name():
    assert load_scenario("case_study") == load_scenario(SCENARIOS_DIR / "case_study.yaml")


# -- errors -----------------------------------------------------------------------------
BAD = [
    ({"es": [{}, {"flops_per_s": -3.0}]}, "es[1].flops_per_s", "-3.0", "must be in [1e+06, 1e+17]"),
    ({"channel": {"kind": "wifi"}}, "channel.kind", "'wifi'", "['awgn', 'perfect', 'uma', 'umi']"),
    ({"channel": {"foo": 1.0}}, "channel.foo", "not a known field", "allowed: ['kind', 'snr_db', 'snr_range_db']"),
    ({"channel": {"kind": "umi", "snr_db": 5.0}}, "channel.snr_db", "not a known field", "carrier_hz"),
    ({"foo": 1}, "foo", "not a known field", "allowed: ['name'"),
    ({"bandwidth_hz": math.nan}, "bandwidth_hz", "nan", "finite"),
    ({"bandwidth_hz": math.inf}, "bandwidth_hz", "inf", "finite"),
    ({"bandwidth_hz": 0.0}, "bandwidth_hz", "0.0", "in [1000, 2e+09]"),
    ({"num_es": "two"}, "num_es", "'two'", "must be an integer"),
    ({"num_es": 0}, "num_es", "0", "in [1, 64]"),
    ({"num_es": 2.0}, "num_es", "2.0", "must be an integer"),
    ({"ue": {"flops_per_s": 0.0}}, "ue.flops_per_s", "0.0", "in [1e+06, 1e+17]"),
    ({"ue": {"power_w": -1.0}}, "ue.power_w", "-1.0", "in [0.001, 10000]"),
    ({"ue": {"device": "toaster"}}, "ue.device", "'toaster'", "phone_npu"),
    ({"ue": {"position_m": [1.0]}}, "ue.position_m", "[1.0]", "2 numbers"),
    ({"es": [{"device": "abacus"}]}, "es[0].device", "'abacus'", "edge_gpu"),
    ({"generation": {"steps": 0}}, "generation.steps", "0", "in [1, 1000]"),
    ({"generation": {"strength": 0.0}}, "generation.strength", "0.0", "> 0"),
    ({"generation": {"strength": 1.5}}, "generation.strength", "1.5", "<= 1"),
    ({"es": [{"load": 1.0}]}, "es[0].load", "1.0", "< 1"),
    ({"es": [{"load": -0.1}]}, "es[0].load", "-0.1", ">= 0"),
    ({"es": [{}, {}, {}]}, "es", "3", "num_es=2"),
    ({"es": [{"colour": "red"}]}, "es[0].colour", "not a known field", "load"),
    ({"protocols": ["uieg", "teleport"]}, "protocols[1]", "'teleport'", "full_ue"),
    ({"protocols": ["uieg", "ciag", "uieg"]}, "protocols[2]", "'uieg'", "repeat"),
    ({"protocols": []}, "protocols", "[]", "at least one"),
    ({"num_es": 1, "protocols": ["uieg", "uidg"]}, "protocols", "'uidg'", "single-ES"),
    ({"model": "/no/such/folder"}, "model", "'/no/such/folder'", "no such folder"),
    ({"model": "sd99"}, "model", "'sd99'", "['sd15', 'tiny', 'tiny_ue']"),
    ({"backend": "quantum"}, "backend", "'quantum'", "['live', 'profiled']"),
    ({"transmission": {"mode": "smoke"}}, "transmission.mode", "'smoke'", "['analog', 'digital']"),
    ({"transmission": {"bits_per_value": 64}}, "transmission.bits_per_value", "64", "<= 32"),
    ({"transmission": {"bits_per_value": 0}}, "transmission.bits_per_value", "0", ">= 1"),
    ({"channel": {"snr_db": "high"}}, "channel.snr_db", "'high'", "must be a number"),
    ({"channel": {"snr_db": True}}, "channel.snr_db", "True", "must be a number"),
    ({"channel": {"snr_range_db": [20.0, -20.0]}}, "channel.snr_range_db", "[20.0, -20.0]", "low <= high"),
    ({"channel": {"kind": "umi", "snr_range_db": [0.0, 1.0]}}, "channel.snr_range_db", "not a known field", "umi"),
    ({"channel": {"kind": "uma", "fading": "nakagami"}}, "channel.fading", "'nakagami'", "rayleigh"),
    ({"channel": "awgn"}, "channel", "'awgn'", "must be a mapping"),
    ({"reward": {"weights": {"latency": -1.0}}}, "reward.weights.latency", "-1.0", "in [0, 1e+06]"),
    ({"reward": {"weights": {"joy": 1.0}}}, "reward.weights.joy", "not a known field", "quality"),
    ({"seed": -1}, "seed", "-1", "in [0, 9223372036854775807]"),
    ({"torch_device": "gpu"}, "torch_device", "'gpu'", "['cpu', 'cuda', 'cuda:N', 'mps']"),
    ({"torch_device": "cuda:first"}, "torch_device", "'cuda:first'", "'cuda:N'"),
    ({"torch_device": 0}, "torch_device", "0", "must be a string"),
    ({"torch_dtype": "half"}, "torch_dtype", "'half'", "['fp32', 'fp16', 'bf16']"),
    ({"torch_dtype": "float32"}, "torch_dtype", "'float32'", "['fp32', 'fp16', 'bf16']"),
]


@pytest.mark.parametrize(("data", "field", "given", "allowed"), BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_bad_config_gives_one_line_error(data, field, given, allowed):
    with pytest.raises(ConfigError) as info:
        load_scenario(data)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"'{field}' "), msg
    assert given in msg and allowed in msg, msg


def test_errors_same_through_overrides_and_files(tmp_path):
    path = write(tmp_path, "es:\n  - {}\n  - {flops_per_s: -3.0}\n")
    expected = "'es[1].flops_per_s' must be in [1e+06, 1e+17] (got -3.0)"
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    assert str(info.value) == expected
    with pytest.raises(ConfigError) as info:
        load_scenario(None, channel__kind="wifi")
    assert str(info.value) == "'channel.kind' must be one of ['awgn', 'perfect', 'uma', 'umi'] (got 'wifi')"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", "must hold a mapping at top level (got list)"),
        ("just a string\n", "must hold a mapping at top level (got str)"),
        ("num_es: [1, 2\n", "is not valid YAML"),
        ("num_es: 1\nnum_es: 2\n", "duplicate key 'num_es'"),
    ],
)
def test_bad_files(tmp_path, text, expected):
    path = write(tmp_path, text, "x.yaml")
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    msg = str(info.value)
    assert "\n" not in msg and expected in msg and str(path) in msg


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_scenario(tmp_path / "nope.yaml")


def test_bad_source_type():
    with pytest.raises(ConfigError, match="got int"):
        load_scenario(5)  # type: ignore[arg-type]


def test_bad_override_path():
    with pytest.raises(ConfigError, match="not a field path"):
        load_scenario(None, **{"channel__": 1})


# -- frozen, round trip, shipped files --------------------------------------------------
def test_frozen():
    sc = load_scenario()
    with pytest.raises(ValueError):
        sc.num_es = 3  # type: ignore[misc]
    with pytest.raises(ValueError):
        sc.channel.snr_db = 0.0  # type: ignore[misc]
    with pytest.raises(ValueError):
        sc.es[0].load = 0.9  # type: ignore[misc]
    assert isinstance(sc.es, tuple) and isinstance(sc.protocols, tuple)
    assert hash(sc) == hash(load_scenario())


@pytest.mark.parametrize("source", [None, "case_study", "multi_es", {"num_es": 3, "channel": {"kind": "uma"}}])
def test_round_trip(source):
    sc = load_scenario(source)
    data = scenario_to_dict(sc)
    assert yaml.safe_load(yaml.safe_dump(data)) == data
    assert load_scenario(data) == sc
    assert load_scenario(sc) == sc


@pytest.mark.parametrize("path", sorted(SCENARIOS_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_scenarios_load(path):
    sc = load_scenario(path)
    assert len(sc.es) == sc.num_es


def test_shipped_case_study_and_multi_es():
    cs = load_scenario("case_study")
    assert cs.num_es == 1 and cs.channel.kind == "awgn" and cs.channel.snr_db == 10.0
    assert list(cs.protocols) == SINGLE_ES
    me = load_scenario("multi_es")
    assert me.num_es == 3 and len(me.es) == 3 and me.channel.kind == "umi"
    assert list(me.protocols) == ALL_PROTOCOLS


# -- the tables of known names -----------------------------------------------------------
def test_known_names_tables():
    assert config.channel_kinds() == ["awgn", "perfect", "uma", "umi"]
    assert config.protocol_names() == ALL_PROTOCOLS
    assert config.device_names() == ["datacenter_gpu", "edge_gpu", "laptop_gpu", "phone_npu", "phone_npu_e2e"]
    assert load_scenario("multi_es").num_es == 3


def test_defaults_live_in_one_place():
    """default.yaml (the documented defaults) is exactly the schema's defaults; the channel constructors'
    defaults are the config's CHANNEL_DEFAULTS; the known names are the owning modules' tables."""
    from meg_gym.channel import CHANNELS
    from meg_gym.protocols import PROTOCOLS

    assert config.scenario_to_dict(load_scenario("default")) == config.scenario_to_dict(load_scenario(None))
    for kind, defaults in config.CHANNEL_DEFAULTS.items():
        ctor = CHANNELS[kind].param_defaults()
        assert {k: ctor[k] for k in defaults} == defaults, kind
    assert config.protocol_names() == list(PROTOCOLS) and config.channel_kinds() == sorted(CHANNELS)


def test_repeated_es_positions_raise_naming_the_es():
    """All ESs at one position (the default) take the kind's layout; distinct positions place them; a
    mix is a typo and raises instead of being replaced by the default layout."""
    from meg_gym.system import channel_params

    base = dict(num_es=3, channel={"kind": "umi"})
    assert "es_positions_m" not in channel_params(load_scenario("default", **base))
    given = [{"position_m": [0.0, 0.0]}, {"position_m": [100.0, 0.0]}, {"position_m": [200.0, 0.0]}]
    assert channel_params(load_scenario("default", **base, es=given))["es_positions_m"][2] == (200.0, 0.0)
    given[2] = {"position_m": [0.0, 0.0]}
    with pytest.raises(ValueError, match=r"'es\[2\]\.position_m' must differ from 'es\[0\]\.position_m'"):
        channel_params(load_scenario("default", **base, es=given))
    with pytest.raises(ValueError, match=r"'es\[1\]\.position_m' must differ"):  # one site given for all three
        channel_params(load_scenario("default", **base, es=[{"position_m": [30.0, 5.0]}]))


def test_es_transmit_power_defaults_to_the_channel_kinds_base_station():
    """No ES power given: umi's 30 dBm small cell, uma's 46 dBm macro cell (the -v0 config always passed
    30 dBm, so uma's macro-cell power was unreachable); a given power wins, per ES."""
    from meg_gym.channel import make_channel
    from meg_gym.system import channel_params

    for kind, dbm in (("umi", 30.0), ("uma", 46.0)):
        params = channel_params(load_scenario("default", num_es=2, channel={"kind": kind}))
        assert "es_tx_power_dbm" not in params
        assert make_channel(kind, **params).es_tx_power_dbm == dbm
    params = channel_params(load_scenario("default", num_es=2, channel={"kind": "uma"},
                                          es=[{"tx_power_dbm": 40.0}, {}]))
    assert params["es_tx_power_dbm"] == [40.0, 46.0]


@pytest.mark.parametrize(("device", "dtype"), [("cpu", "fp32"), ("cuda", "fp16"), ("cuda:3", "bf16"), ("mps", "fp16")])
def test_torch_device_and_dtype_are_validated_without_a_gpu(device, dtype):
    # the names are checked here; whether this machine has the device is checked when a live system is built
    sc = load_scenario(torch_device=device, torch_dtype=dtype)
    assert (sc.torch_device, sc.torch_dtype) == (device, dtype)
    assert load_scenario(scenario_to_dict(sc)) == sc


def test_cli_torch_flags_override_the_scenario():
    from meg_gym.cli import _parser, _scenario

    args = _parser().parse_args(["calibrate", "--torch-device", "cuda:1", "--torch-dtype", "bf16"])
    sc = _scenario(args)
    assert (sc.torch_device, sc.torch_dtype) == ("cuda:1", "bf16")
