"""Bad input never becomes a traceback, a wrong number or code execution (issue 21).

One test per class of hostile input, parametrised over its cases: values that pass a naive
check and then break the physics, combinatorial sizes, oversized inputs in error messages,
corrupted or crafted run folders, and the CLI's one-line errors.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from meg_gym.config import ConfigError, load_scenario
from meg_gym.core import Core, obs_size

PROFILED = {"backend": "profiled"}

# -- values that passed validation and then broke the physics ----------------------------
# (overrides, the field the one-line error must name)
EXTREME = [
    ({"channel": {"kind": "umi"}, "ue": {"tx_power_dbm": 1e308}}, "ue.tx_power_dbm"),
    ({"channel": {"kind": "umi"}, "es": [{"tx_power_dbm": 1e308}]}, "es[0].tx_power_dbm"),
    ({"channel": {"kind": "umi", "fading": "rician", "rician_k_db": 1e308}}, "channel.rician_k_db"),
    ({"channel": {"snr_db": -1e308}}, "channel.snr_db"),
    ({"channel": {"snr_db": 1e308}}, "channel.snr_db"),
    ({"channel": {"snr_db": 1e5}}, "channel.snr_db"),
    ({"channel": {"snr_range_db": [-1e308, 0.0]}}, "channel.snr_range_db[0]"),
    ({"workload": {"latency_scale_s": 1e-320}}, "workload.latency_scale_s"),
    # deadlines of 20 s observed in units of 1 ms pass the observation bound (1e4)
    ({"workload": {"latency_scale_s": 1e-3, "deadline_s": [0.3, 20.0]}}, "workload.latency_scale_s"),
    ({"ue": {"flops_per_s": 1e308}}, "ue.flops_per_s"),
    ({"ue": {"flops_per_s": 1e-300}}, "ue.flops_per_s"),
    ({"es": [{"flops_per_s": 1e-300}]}, "es[0].flops_per_s"),
    ({"bandwidth_hz": 1e-300}, "bandwidth_hz"),
    ({"bandwidth_hz": 1e300}, "bandwidth_hz"),
    ({"bandwidth_hz": 2e3, "bandwidth_shares": [0.25, 1.0]}, "bandwidth_shares"),
    ({"channel": {"kind": "umi", "carrier_hz": 1e308}}, "channel.carrier_hz"),
    ({"channel": {"kind": "umi", "noise_figure_db": 1e308}}, "channel.noise_figure_db"),
    ({"channel": {"kind": "umi"}, "ue": {"position_m": [1e308, 0.0]}}, "ue.position_m[0]"),
    ({"channel": {"kind": "umi"}, "ue": {"speed_mps": 1e308}}, "ue.speed_mps"),
    ({"workload": {"arrival_rate_hz": 1e-308}}, "workload.arrival_rate_hz"),
    ({"workload": {"arrival_rate_hz": 1e308}}, "workload.arrival_rate_hz"),
    ({"workload": {"deadline_s": [1e308, 1e308]}}, "workload.deadline_s[0]"),
    ({"workload": {"requests_per_episode": 10**30}}, "workload.requests_per_episode"),
    ({"reward": {"weights": {"latency": 1e308}}}, "reward.weights.latency"),
    ({"ue": {"power_w": 1e308}}, "ue.power_w"),
    ({"seed": 10**30}, "seed"),
    ({"generation": {"steps": 10**9}}, "generation.steps"),
    ({"transmission": {"max_retransmissions": 10**9}}, "transmission.max_retransmissions"),
    # within each field's range, but the combination breaks a derived quantity (checked when the core is built)
    ({"es": [{"flops_per_s": 1e6}]}, "es[0].flops_per_s"),  # a Full-ES generation of hours: latency term
    ({"ue": {"flops_per_s": 1e6}}, "ue.flops_per_s"),  # the same for Full UE on the phone
    ({"es": [{"flops_per_s": 1e17}]}, "es[0].flops_per_s"),  # millions of background jobs per request
    ({"workload": {"arrival_rate_hz": 1e-3}}, "workload.arrival_rate_hz"),  # the same from rare requests
]


def test_a_ue_out_of_coverage_fails_its_offloads_instead_of_taking_hours():
    """No usable link (100 GHz, -40 dBm, 10 km away) is an outage of the digital link (meg_gym.channel.digital):
    every offloading request fails at once (quality 0, deadline missed, finite terms), Full UE still serves."""
    sc = load_scenario("default", backend="profiled", channel={"kind": "umi", "carrier_hz": 100e9},
                       ue={"tx_power_dbm": -40.0, "position_m": [5e3, 5e3]},
                       es=[{"position_m": [-5e3, -5e3]}, {"position_m": [-4e3, -5e3]}])
    core = Core(sc)
    core.reset(0)
    for p in core.placements:
        res = core.step(np.array([[p.index]]), np.ones((1, 1)))
        assert np.isfinite(res.reward).all() and np.isfinite(res.latency_s).all()
        assert bool(res.outage[0, 0]) == p.radio
        if p.radio:
            assert res.quality[0, 0] == 0.0 and res.deadline_missed[0, 0]


@pytest.mark.parametrize(("overrides", "field"), EXTREME, ids=[f"{f}:{i}" for i, (_, f) in enumerate(EXTREME)])
def test_extreme_values_are_one_line_errors_naming_the_field(overrides, field):
    with pytest.raises(ConfigError) as info:
        Core(load_scenario(None, **PROFILED, **overrides))
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 600, msg
    assert f"'{field}'" in msg, msg


# the ends of every range that a scenario can reach: they build, and an episode of random
# actions keeps rewards finite and observations inside the env's observation space
EDGES = [
    {"ue": {"flops_per_s": 1e17}},
    {"ue": {"flops_per_s": 1e7}},  # at 1e6 FLOP/s Full UE's 20 steps take 5 hours: refused (EXTREME)
    {"ue": {"power_w": 1e-3}},
    {"bandwidth_hz": 4e3},
    {"bandwidth_hz": 2e9},
    {"channel": {"snr_db": -50.0}},
    {"channel": {"snr_db": 100.0}},
    {"workload": {"latency_scale_s": 1e-3, "deadline_s": [1e-3, 1e-3]}},
    {"workload": {"latency_scale_s": 3600.0, "deadline_s": [3600.0, 3600.0]}},
    {"workload": {"arrival_rate_hz": 1e4}},
    {"reward": {"weights": {"latency": 1e6}}},
    {"es": [{"load": 0.999}]},
    {"channel": {"kind": "umi"}, "ue": {"tx_power_dbm": 33.0}, "es": [{"tx_power_dbm": 60.0}]},
    {"channel": {"kind": "uma", "fading": "rician", "rician_k_db": 40.0}, "ue": {"speed_mps": 140.0}},
]


@pytest.mark.parametrize("overrides", EDGES, ids=[str(i) for i in range(len(EDGES))])
def test_range_edges_keep_rewards_finite_and_observations_in_bounds(overrides):
    from envs.common import obs_bounds

    core = Core(load_scenario(None, **PROFILED, **overrides))
    core.reset(seed=0)
    low, high = obs_bounds(core.num_es)
    obs = np.zeros((1, 1, obs_size(core.num_es)), dtype=np.float32)
    rng = np.random.default_rng(0)
    for _ in range(100):
        step = core.step(rng.integers(len(core.placements), size=(1, 1)), rng.choice([0.25, 1.0], size=(1, 1)))
        core.observe(obs)
        assert np.all(np.isfinite(step.reward)), step.reward
        assert all(np.all(np.abs(t) <= 1e4) for t in step.terms.values()), step.terms
        assert np.all(obs >= low) and np.all(obs <= high), obs


# -- sizes that grow combinatorially: refused before anything is allocated ----------------
SIZES = [
    ({"num_es": 50}, {}, "num_es"),
    ({"num_es": 10_000}, {}, "num_es"),
    ({"num_es": 20}, {}, "max_es_per_request"),  # 2**20 ES sets of every multi-ES protocol
    ({"num_es": 64}, {"max_es_per_request": 3}, "max_es_per_request"),
    ({}, {"ues": 10**9}, "num_ues"),
    ({}, {"copies": 10**9}, "copies"),
    ({}, {"copies": 2**12, "ues": 2**12}, "copies"),
]


@pytest.mark.parametrize(("scenario", "kwargs", "field"), SIZES, ids=[f"{s[2]}:{i}" for i, s in enumerate(SIZES)])
def test_combinatorial_sizes_are_refused_quickly(scenario, kwargs, field):
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as info:
        Core(load_scenario(None, **PROFILED, **scenario), **kwargs)
    assert time.perf_counter() - t0 < 5.0
    msg = str(info.value)
    assert "\n" not in msg and f"'{field}'" in msg, msg


# -- an oversized input only ever shows a short excerpt in an error ----------------------
def _bomb(levels: int = 9) -> str:
    """A billion laughs in flow style: 9 levels of 9 references to the level below (9**9 leaves)."""
    text, name = "&a0 [x, x, x, x, x, x, x, x, x]", "a0"
    for k in range(1, levels):
        text, name = f"&a{k} [{text}, {', '.join(['*' + name] * 8)}]", f"a{k}"
    return text


@pytest.mark.parametrize("key", ["name", "protocols", "es", "channel", "num_es", "model", "ue", "bandwidth_shares"])
def test_yaml_bomb_error_shows_a_short_excerpt(tmp_path, key):
    path = tmp_path / "bomb.yaml"
    path.write_text(f"{key}: {_bomb()}\n")
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    assert time.perf_counter() - t0 < 5.0
    msg = str(info.value)
    assert len(msg) < 400 and f"'{key}" in msg, msg[:400]


# -- corrupted data files: refused on load, never used silently ---------------------------
def _table_json():
    import json

    from meg_gym.quality.calibration import CALIBRATION_DIR

    return json.loads((CALIBRATION_DIR / "tiny.json").read_text())


def _set(path, value):
    def edit(d):
        obj = d
        for part in path[:-1]:
            obj = obj[part]
        obj[path[-1]] = value(obj[path[-1]]) if callable(value) else value
        return d
    return edit


TABLE_CORRUPTIONS = [
    ("nan mean", _set(("tables", "ciag", "quality", "mean"), lambda g: [[[float("nan")] * 9] * 9]), "must be finite"),
    ("negative spread", _set(("tables", "ciag", "ssim", "std"), lambda g: [[[-0.1] * 9] * 9]), ">= 0"),
    ("mean above 1", _set(("tables", "uieg", "quality", "mean"), lambda g: [[[1.5] * 9] * 9]), "[0, 1]"),
    ("reversed grid", _set(("snr_grid_db",), lambda g: g[::-1]), "increasing"),
    ("repeated grid point", _set(("snr_grid_db",), lambda g: [g[0]] + g[:-1]), "increasing"),
    ("grid of another size", _set(("snr_grid_db",), lambda g: g[:-1]), "shape"),
    ("steps grid mismatch", _set(("steps_grid",), [10, 20]), "shape"),
    ("ragged grid", _set(("tables", "ciag", "quality", "mean"), [[[0.5]]]), "shape"),
    ("unknown protocol", lambda d: {**d, "tables": {**d["tables"], "teleport": d["tables"]["ciag"]}}, "teleport"),
    ("bad axes", _set(("axes", "ciag"), ["sideways"]), "axes.ciag"),
    ("no quality grid", lambda d: _set(("tables", "ciag"), {"ssim": d["tables"]["ciag"]["ssim"]})(d), "quality"),
    ("zero requests", _set(("requests_per_point",), 0), "requests_per_point"),
    ("another model", _set(("model",), "sd15"), "model"),
    ("settings of another model", _set(("settings", "model"), "sd15"), "model"),
    ("settings left out", _set(("settings",), {}), "does not record"),
    ("other bits per value", _set(("settings", "bits_per_value"), 8), "bits_per_value"),
    ("top level a list", lambda d: [d], "malformed"),
    ("truncated", None, "malformed"),
]


@pytest.mark.parametrize(("edit", "needle"), [c[1:] for c in TABLE_CORRUPTIONS], ids=[c[0] for c in TABLE_CORRUPTIONS])
def test_corrupted_calibration_table_is_refused(tmp_path, edit, needle):
    import json

    path = tmp_path / "table.json"
    text = json.dumps(edit(_table_json())) if edit else json.dumps(_table_json())[:5000]
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        Core(load_scenario(None, **PROFILED, calibration=str(path)))
    msg = str(info.value)
    assert "\n" not in msg and needle in msg, msg


def _cost_entries(folder):
    import json

    return json.loads((folder / "costs" / "tiny.json").read_text())


COST_CORRUPTIONS = [
    ("1000x flops", lambda e: [{**r, "flops": r["flops"] * 1000} for r in e["rows"]], "SHA-256"),
    ("negative payload", lambda e: [{**r, "payload_bits": -r["payload_bits"]} for r in e["rows"]], "SHA-256"),
    ("rows not a list", lambda e: "many", "rows"),
]


@pytest.mark.parametrize("edit", [c[1] for c in COST_CORRUPTIONS] + ["truncated", "digest recomputed"],
                         ids=[c[0] for c in COST_CORRUPTIONS] + ["truncated", "digest recomputed"])
def test_corrupt_user_cost_cache_is_recounted_with_a_warning(tmp_path, monkeypatch, edit):
    import json

    from meg_gym import costs
    from meg_gym.system import MegSystem

    monkeypatch.setenv("MEG_GYM_CACHE", str(tmp_path))
    monkeypatch.setattr(costs, "SHIPPED_DIR", tmp_path / "none")  # only the user cache
    fresh = MegSystem(load_scenario(None, **PROFILED), judge=None).costs("ciag", (0,))
    path = tmp_path / "costs" / "tiny.json"
    data = json.loads(path.read_text())
    key = next(iter(data))
    if edit == "truncated":
        path.write_text(path.read_text()[:200])
    elif edit == "digest recomputed":  # a consistent-looking entry whose tensor payload is not values x bits
        rows = [{**r, "payload_bits": r["payload_bits"] + 1} if r["kind"] == "send" and r["values"] else r
                for r in data[key]["rows"]]
        data[key] = {"rows": rows, "sha256": costs._digest(key, rows)}
        path.write_text(json.dumps(data))
    else:
        data[key] = {"rows": edit(data[key]), "sha256": data[key]["sha256"]}
        path.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match="counted again"):
        again = MegSystem(load_scenario(None, **PROFILED), judge=None).costs("ciag", (0,))
    assert again == fresh
    assert not costs._read(path) or costs._problem(key, json.loads(path.read_text())[key]) is None  # rewritten


def test_corrupt_shipped_cost_file_is_an_error_naming_it(tmp_path, monkeypatch):
    import json
    import shutil

    from meg_gym import costs
    from meg_gym.system import MegSystem

    monkeypatch.setenv("MEG_GYM_CACHE", str(tmp_path / "cache"))
    shutil.copytree(costs.SHIPPED_DIR, tmp_path / "shipped")
    path = tmp_path / "shipped" / "tiny.json"
    data = json.loads(path.read_text())
    key = next(iter(data))
    data[key]["rows"][0]["flops"] *= 1000
    path.write_text(json.dumps(data))
    monkeypatch.setattr(costs, "SHIPPED_DIR", tmp_path / "shipped")
    with pytest.raises(costs.CostCacheError, match="tiny.json"):
        Core(load_scenario(None, **PROFILED))
    assert MegSystem  # the shipped file is never recounted silently


def _weights_copy(tmp_path):
    import shutil

    from meg_gym.ldm.components import SHIPPED_DIR

    folder = tmp_path / "tiny"
    shutil.copytree(SHIPPED_DIR / "tiny", folder)
    return folder


def _randomise_region(path):
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    start = len(data) // 2
    data[start:start + 4096] = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


WEIGHT_CORRUPTIONS = [
    ("unet data randomised", "unet.safetensors", _randomise_region, "unet.safetensors does not match"),
    ("vae truncated", "vae.safetensors", lambda p: p.write_bytes(p.read_bytes()[:1000]), "vae.safetensors"),
    ("text encoder emptied", "text_encoder.safetensors", lambda p: p.write_bytes(b""), "text_encoder.safetensors"),
    ("digest list gone", "SHA256SUMS", lambda p: p.write_text("not a digest line\n"), "SHA256SUMS"),
    ("meta truncated", "meta.json", lambda p: p.write_text(p.read_text()[:30]), "meta.json is not readable JSON"),
    ("meta scaling NaN", "meta.json", lambda p: p.write_text('{"name": "tiny", "scaling_factor": NaN}'),
     "scaling_factor"),
    ("meta a list", "meta.json", lambda p: p.write_text("[1, 2]"), "meta.json must be a JSON object"),
]


@pytest.mark.parametrize(("name", "corrupt", "needle"), [c[1:] for c in WEIGHT_CORRUPTIONS],
                         ids=[c[0] for c in WEIGHT_CORRUPTIONS])
def test_corrupted_weights_and_meta_are_errors_naming_the_file(tmp_path, name, corrupt, needle):
    from meg_gym.ldm.components import ModelError, load_shipped

    folder = _weights_copy(tmp_path)
    corrupt(folder / name)
    with pytest.raises((ModelError, ValueError)) as info:
        load_shipped("tiny", folder)
    assert needle in str(info.value) and "\n" not in str(info.value), str(info.value)


@pytest.mark.parametrize("corrupt", ["truncated", "randomised"])
def test_a_corrupted_classifier_is_an_error_not_fidelity_turned_off(tmp_path, corrupt):
    from meg_gym.ldm.components import ModelError
    from meg_gym.quality.fidelity import load_judge

    folder = _weights_copy(tmp_path)
    path = folder / "classifier.safetensors"
    if corrupt == "truncated":
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    else:
        _randomise_region(path)
    with pytest.raises(ModelError, match="classifier.safetensors"):
        load_judge(folder)


CARD_CORRUPTIONS = [
    ("not yaml", "image_size: [64\n", "not readable YAML"),
    ("a list", "- 1\n- 2\n", "must be a mapping"),
    ("huge image", None, "image_size"),
    ("no vae", "name: tiny\nimage_size: 64\narchitecture: {}\n", "architecture.vae.config"),
]


@pytest.mark.parametrize(("text", "needle"), [c[1:] for c in CARD_CORRUPTIONS], ids=[c[0] for c in CARD_CORRUPTIONS])
def test_corrupted_model_card_is_an_error(tmp_path, monkeypatch, text, needle):
    from meg_gym.ldm import cards

    original = (cards.MODELS_DIR / "tiny.yaml").read_text()
    (tmp_path / "tiny.yaml").write_text(text if text is not None else original.replace("image_size: 64",
                                                                                        "image_size: 1000000000"))
    monkeypatch.setattr(cards, "MODELS_DIR", tmp_path)
    with pytest.raises(cards.ModelError, match=needle):
        cards.model_card("tiny")


# -- crafted state files: data only, never code ------------------------------------------
class _Marker:
    """Unpickling this writes a file: the proof that something was unpickled."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


CRAFTED_STATES = [
    ("a module function", {"obj": "os:system", "attrs": {}}),
    ("a non-dataclass", {"obj": "subprocess:Popen", "attrs": {"args": "touch x"}}),
    ("a project non-dataclass missing", {"obj": "meg_gym.core:Core", "attrs": {}}),
    ("a foreign bit generator", {"rng": {"d": [["bit_generator", "os.system"]]}}),
    ("an object array", {"np": "|O", "v": 1}),
    ("a dangling reference", {"ref": 12345}),
    ("a missing array", {"a": "nope"}),
    ("an unknown tag", {"exec": "print(1)"}),
]


@pytest.mark.parametrize("node", [c[1] for c in CRAFTED_STATES], ids=[c[0] for c in CRAFTED_STATES])
def test_crafted_state_is_refused_without_running_code(node):
    from meg_gym.state import StateError, decode

    with pytest.raises(StateError):
        decode(node, {}, None)


def test_state_round_trip_restores_an_env_and_a_fresh_one_differs():
    import json

    import gymnasium as gym

    import envs  # noqa: F401
    from agents.training import _env_state, _set_env_state
    from meg_gym.state import decode, encode

    def rollout(env, rng, n=60):
        out = []
        for _ in range(n):
            obs, r, term, trunc, _ = env.step(rng.integers(env.action_space.nvec))
            out.append((obs.tobytes(), r))
            if term or trunc:
                env.reset()
        return out

    a, b, c = (gym.make("MEG/MultiES-v1", config="multi_es", backend="profiled") for _ in range(3))
    a.reset(seed=3)
    rollout(a, np.random.default_rng(0), 37)
    tree, arrays = encode(_env_state(a))
    b.reset(seed=99)
    c.reset(seed=99)
    _set_env_state(b, decode(json.loads(json.dumps(tree)), arrays, _env_state(b)))
    ra, rb, rc = (rollout(e, np.random.default_rng(1)) for e in (a, b, c))
    assert ra == rb and ra != rc


def _train_cfg(**kw):
    cfg = {"algo": "ppo", "env": "MEG/SingleES-v1", "env_kwargs": {"workload": {"requests_per_episode": 40}},
           "n_envs": 1, "n_timesteps": 96, "seed": 1, "checkpoint_freq": 32, "eval_freq": 0,
           "hyperparams": {"n_steps": 32, "batch_size": 32, "n_epochs": 1}}
    cfg.update(kw)
    return cfg


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One short PPO run with VecNormalize and its checkpoints, copied by the run-folder cases."""
    from agents.training import train

    run = tmp_path_factory.mktemp("run") / "r"
    train(_train_cfg(normalize=True), out=run)
    return run


def _copy_run(run, tmp_path):
    import shutil

    dst = tmp_path / "r"
    shutil.copytree(run, dst)
    (dst / "summary.json").unlink()
    (dst / "final_model.zip").unlink()
    return dst


def _ckpts(run):
    return sorted((run / "checkpoints").glob("ckpt_*_manifest.json"))


def _truncate(path):
    path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 2)])


def _newest(run, suffix):
    return next(p for p in sorted((run / "checkpoints").glob(f"ckpt_*{suffix}"))[::-1])


RUN_DAMAGE = [
    ("newest zip truncated", lambda r: _truncate(_newest(r, ".zip")), "ckpt_000000000032"),
    ("newest state truncated", lambda r: _truncate(_newest(r, "_state.npz")), "ckpt_000000000032"),
    ("newest state json edited", lambda r: _newest(r, "_state.json").write_text("{}"), "ckpt_000000000032"),
    ("newest manifest missing (killed mid-checkpoint)", lambda r: _newest(r, "_manifest.json").unlink(),
     "ckpt_000000000032"),
    ("newest manifest garbage", lambda r: _newest(r, "_manifest.json").write_text("[1"), "ckpt_000000000032"),
]


@pytest.mark.parametrize(("damage", "expect"), [c[1:] for c in RUN_DAMAGE], ids=[c[0] for c in RUN_DAMAGE])
def test_resume_falls_back_to_the_newest_complete_checkpoint(trained_run, tmp_path, capsys, damage, expect):
    from agents.training import latest_checkpoint, train

    run = _copy_run(trained_run, tmp_path)
    assert [m.name[:17] for m in _ckpts(run)] == ["ckpt_000000000032", "ckpt_000000000064"]
    damage(run)
    with pytest.warns(UserWarning, match="ckpt_000000000064 is skipped"):
        assert latest_checkpoint(run, report=True).name == expect
    config_before = (run / "config.yaml").stat()
    summary = train(_train_cfg(normalize=True), out=run, resume=True)
    assert summary["timesteps"] == 96
    err = capsys.readouterr().err
    assert f"from checkpoint {expect}" in err, err
    after = (run / "config.yaml").stat()
    assert (after.st_ino, after.st_mtime_ns) == (config_before.st_ino, config_before.st_mtime_ns)  # written once


@pytest.mark.parametrize("resume", [False, True], ids=["restart", "resume"])
def test_a_run_killed_before_its_first_checkpoint_can_go_on(tmp_path, resume):
    from agents.training import train

    run = tmp_path / "r"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "ckpt_000000000032.zip").write_bytes(b"PK\x03\x04 half a zip")  # killed mid-write
    (run / "checkpoints" / ".ckpt_000000000032.tmp.zip").write_bytes(b"PK")
    summary = train(_train_cfg(n_timesteps=64), out=run, resume=resume)
    assert summary["timesteps"] == 64 and summary["resumed_from"] is None


def test_no_file_of_a_run_folder_is_a_pickle(trained_run):
    files = [p for p in trained_run.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix == ".pkl"]
    for p in files:
        if p.suffix in (".json", ".npz", ".yaml", ".csv"):
            assert not p.read_bytes().startswith(b"\x80"), p  # a pickle's protocol opcode


def test_crafted_pickles_in_a_run_folder_are_never_loaded(trained_run, tmp_path):
    import pickle

    from agents.training import load_model, train

    run = _copy_run(trained_run, tmp_path)
    marker = tmp_path / "pwned"
    for name in ("vecnormalize.pkl", "checkpoints/ckpt_000000000064_state.pkl",
                 "checkpoints/ckpt_000000000064_vecnormalize.pkl", "checkpoints/ckpt_000000000064_replay_buffer.pkl"):
        (run / name).write_bytes(pickle.dumps(_Marker(marker)))
    train(_train_cfg(normalize=True), out=run, resume=True)
    load_model(run)
    load_model(run / "checkpoints" / "ckpt_000000000064.zip")
    assert not marker.exists()


def test_ldm_checkpoint_with_a_pickled_payload_is_refused(tmp_path):
    import pickle

    from meg_gym.ldm.components import ModelError
    from meg_gym.ldm.train import _load_ckpt

    marker = tmp_path / "pwned"
    path = tmp_path / "vae.pt"
    path.write_bytes(pickle.dumps({"step": 1, "rng": _Marker(marker)}))
    with pytest.raises(ModelError, match="cannot be resumed"):
        _load_ckpt(path)
    assert not marker.exists()


# -- the CLI: every user error is one line and exit status 2 ------------------------------
def _cli_files(tmp_path):
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "bomb.yaml").write_text(f"name: {_bomb()}\n")
    (tmp_path / "badalgo.yaml").write_text("algo: foo\nenv: MEG/SingleES-v1\n")
    run = tmp_path / "fakerun"
    run.mkdir()
    (run / "final_model.zip").write_bytes(b"not a zip")
    (run / "config.yaml").write_text("algo: ppo\\nenv: [\n")


CLI_CASES = [
    (["table", "--num-es", "100"], "'num_es'"),
    (["table", "--config", "{tmp}"], "is not a file"),
    (["table", "--config", "{tmp}/bin.yaml"], "could not be read"),
    (["table", "--config", "{tmp}/bomb.yaml"], "'name'"),
    (["table", "--torch-threads", "0"], "'torch_threads'"),
    (["demo", "--snr-db", "1e308"], "'channel.snr_db'"),
    (["costs", "--max-es", "100"], "'num_es'"),
    (["train", "--config", "{tmp}/nonexistent.yaml"], "does not exist"),
    (["train", "--config", "{tmp}/badalgo.yaml"], "'algo'"),
    (["evaluate", "--model", "{tmp}/fakerun", "--env", "MEG/SingleES-v1", "--seeds", "1"], "config.yaml"),
    (["benchmark", "--env", "MEG/SingleES-v1", "--policies", "random", "--seeds", "1", "--env-kwargs",
      '{"num_es": 100}'], "'num_es'"),
    (["benchmark", "--env", "MEG/SingleES-v1", "--policies", "random", "--seeds", "1", "--env-kwargs", "{bad"],
     "'--env-kwargs'"),
    (["calibrate", "--snr-grid", "a,b", "--out", "{tmp}/c.json"], "'--snr-grid'"),
    (["calibrate", "--snr-grid", "10,-10", "--out", "{tmp}/c.json"], "'snr_grid_db'"),
    (["calibrate", "--steps", "0", "--out", "{tmp}/c.json"], "'steps_grid'"),
    (["calibrate", "--requests", "0", "--out", "{tmp}/c.json"], "'requests'"),
    (["train-ldm", "--phase", "vae", "--steps", "-1", "--checkpoint-dir", "{tmp}/ck", "--out", "{tmp}/o"], "'steps'"),
    (["train-ldm", "--phase", "vae", "--lr", "1e308", "--checkpoint-dir", "{tmp}/ck", "--out", "{tmp}/o"], "'lr'"),
]


@pytest.mark.parametrize(("argv", "needle"), CLI_CASES, ids=[" ".join(c[0][:3]) for c in CLI_CASES])
def test_cli_user_errors_are_one_line_and_status_2(tmp_path, capsys, argv, needle):
    from meg_gym.cli import main

    _cli_files(tmp_path)
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    err = [line for line in err if "Warning" not in line and not line.startswith(" ")]
    assert len(err) == 1 and needle in err[0] and len(err[0]) < 700, err
    assert not (tmp_path / "c.json").exists()  # nothing written by a refused command


def test_cli_keeps_the_traceback_of_a_real_bug(monkeypatch):
    from meg_gym import cli

    def buggy(args):  # a numpy error from inside numpy: our bug, not the user's input
        return np.arange(3).reshape(2, 2)

    monkeypatch.setattr(cli, "cmd_table", buggy)
    with pytest.raises(ValueError, match="reshape"):
        cli.main(["table"])


@pytest.mark.parametrize("key", ["algo", "env", "env_kwargs", "hyperparams", "normalize", "policy", "seed", "n_envs"])
def test_training_config_bomb_error_shows_a_short_excerpt(tmp_path, key):
    from agents.training import TrainConfigError, load_train_config

    base = {"algo": "ppo", "env": "MEG/SingleES-v1"}
    path = tmp_path / "train.yaml"
    path.write_text("".join(f"{k}: {v}\n" for k, v in base.items() if k != key) + f"{key}: {_bomb()}\n")
    t0 = time.perf_counter()
    with pytest.raises(TrainConfigError) as info:
        load_train_config(path)
    assert time.perf_counter() - t0 < 5.0
    assert len(str(info.value)) < 400 and f"'{key}'" in str(info.value), str(info.value)[:400]
