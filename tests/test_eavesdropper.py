"""The eavesdropper (meg_gym.eavesdropper): leakage per request, encryption, its channel, every view."""

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401
from meg_gym.config import ConfigError, load_scenario
from meg_gym.core import Core
from meg_gym.eavesdropper import LeakageError, leakage_table_path, load_leakage_table

PROTOCOLS = ["full_ue", "full_es", "uieg", "eiug", "ciag", "esuc"]


def _core(eve, ues=4, **kw):
    """The shipped scenario with ``eve`` for its eavesdropper (a fixed SNR unless ``snr_range_db`` is given)."""
    sc = load_scenario("eavesdropper", backend="profiled", eavesdropper={"snr_range_db": None, **eve}, **kw)
    return Core(sc, ues=ues)


def _serve(core, protocol, share=1.0):
    p = core.placement_index(protocol, (0,))
    return core.step(np.full((core.copies, core.ues), p), np.full((core.copies, core.ues), share))


def test_full_ue_sends_nothing_and_leaks_nothing():
    core = _core({"snr_db": 30.0})
    core.reset(0)
    for _ in range(5):
        res = _serve(core, "full_ue")
        assert (res.leakage == 0.0).all() and (res.terms["leakage"] == 0.0).all()


def test_leakage_in_unit_interval_and_the_reward_pays_for_it():
    core = _core({"snr_range_db": [-20.0, 20.0]})
    core.reset(1)
    w = core.scenario.reward.weights
    for protocol in PROTOCOLS:
        res = _serve(core, protocol)
        assert ((res.leakage >= 0.0) & (res.leakage <= 1.0)).all()
        assert np.allclose(res.terms["leakage"], -res.leakage)
        weighted = sum(getattr(w, k) * res.terms[k] for k in core.terms)
        assert np.allclose(res.reward, weighted)


def test_a_closer_eavesdropper_learns_more_from_a_seed():
    near, far = _core({"snr_db": 20.0}), _core({"snr_db": -20.0})
    near.reset(2)
    far.reset(2)
    a, b = _serve(near, "ciag"), _serve(far, "ciag")
    assert (a.leakage > b.leakage + 0.3).all()  # the shipped table: 0.95 at 20 dB, 0.19 at -20 dB
    assert np.array_equal(a.quality, b.quality)  # the user's side does not depend on who listens


def test_the_leakage_table_is_the_shipped_measured_one_and_a_mismatch_is_one_line():
    sc = load_scenario("eavesdropper", backend="profiled")
    table = load_leakage_table(leakage_table_path(sc))
    # every protocol that sends (full_ue sends nothing), the multi-ES ones measured on ESs 0 and 1
    assert set(table.curves) == {"full_es", "uieg", "eiug", "ciag", "esuc", "uidg", "diug", "dsuc", "uidcg", "dcsuc"}
    with pytest.raises(LeakageError, match="ssim_weight") as err:
        Core(load_scenario(sc, reward={"ssim_weight": 0.2}))  # the score mixes SSIM and fidelity otherwise
    assert "\n" not in str(err.value)


def _digital(eve):
    return _core({**eve}, channel={"kind": "awgn", "snr_db": 10.0, "snr_range_db": None},
                 transmission={"mode": "digital"})


def test_digital_an_eavesdropper_reads_a_payload_only_above_the_rate_threshold():
    hi, lo = _digital({"snr_db": 30.0}), _digital({"snr_db": 0.0})  # the user is at 10 dB
    hi.reset(3)
    lo.reset(3)
    a, b = _serve(hi, "ciag"), _serve(lo, "ciag")
    table = load_leakage_table(leakage_table_path(hi.scenario))
    assert np.allclose(a.leakage, max(table.exact["ciag"].values()))  # bit-exact: the exact copy's leakage
    assert (b.leakage == 0.0).all()  # below the threshold of the rate chosen for 10 dB: nothing


def test_encryption_leaks_nothing_and_costs_its_iv_tag_and_time():
    plain = _digital({"snr_db": 30.0})
    enc = _core({"snr_db": 30.0, "encryption": True}, channel={"kind": "awgn", "snr_db": 10.0, "snr_range_db": None},
                transmission={"mode": "digital"})
    plain.reset(4)
    enc.reset(4)
    a, b = _serve(plain, "ciag"), _serve(enc, "ciag")
    assert (b.leakage == 0.0).all() and (a.leakage > 0.5).all()
    assert (b.uplink_bits - a.uplink_bits == 224).all() and (b.downlink_bits - a.downlink_bits == 224).all()
    seed_bits = a.uplink_bits[0, 0] - 0  # the uplink holds the seed and the prompt's few bytes
    extra = b.latency_s - a.latency_s
    assert (extra > 0).all() and (extra < 4 * seed_bits / 3.2e10).all()


def test_config_errors_are_one_line():
    for kw, match in [({"eavesdropper": {"encryption": True}}, "eavesdropper.encryption' needs transmission.mode"),
                      ({"eavesdropper": {"position_m": [1.0, 2.0]}}, "eavesdropper.position_m' applies to"),
                      ({"eavesdropper": {"snr_db": "loud"}}, "eavesdropper.snr_db' must be a number"),
                      ({"eavesdropper": {"snr_range_db": [5.0, 1.0]}}, "low <= high"),
                      ({"eavesdropper": {"ears": 2}}, "eavesdropper.ears' is not a known field")]:
        with pytest.raises(ConfigError, match=match) as err:
            load_scenario("case_study", **kw)
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="position_m' is required for channel kind 'umi'"):
        load_scenario("multi_ue", eavesdropper={"snr_db": 3.0})


def test_umi_eavesdropper_next_to_an_es_hears_it_best():
    sc = load_scenario("multi_ue", eavesdropper={"position_m": [5.0, 0.0]},  # 5 m from ES 0
                       protocols=["full_ue", "full_es", "ciag"])
    core = Core(sc, ues=2)
    core.reset(5)
    ul, dl = core.eve.snr_now_db(core.bandwidth_hz)
    assert (dl[:, 0] > dl[:, 1] + 10.0).all()  # ES 1 is 115 m away
    assert np.isfinite(ul).all()
    res = core.step(np.full((1, 2), core.placement_index("full_es", (0,))), np.full((1, 2), 0.5))
    assert ((res.leakage > 0.0) & (res.leakage <= 1.0)).all()


def test_every_view_reports_leakage():
    from gymnasium.utils.env_checker import check_env

    env = gym.make("MEG/SingleES-v1", config="eavesdropper")
    check_env(env.unwrapped)
    obs, info = env.reset(seed=0)
    assert obs.shape == (4 + 4 + 2,) and np.isnan(info["leakage"])  # 4N + 4, then its SNRs to the UE and the ES
    _, _, _, _, info = env.step(env.action_space.sample())
    assert 0.0 <= info["leakage"] <= 1.0 and "leakage" in info["rewards"]
    vec = gym.make_vec("MEG/SingleES-v1", num_envs=3, vectorization_mode="vector_entry_point", config="eavesdropper",
                       reward_type="vector")
    vec.reset(seed=0)
    _, r, _, _, info = vec.step(vec.action_space.sample())
    assert r.shape == (3, 6) and info["leakage"].shape == (3,)
    from pettingzoo.test import parallel_api_test

    par = envs.multi_ue_v1.parallel_env(config="multi_ue", num_ues=3, eavesdropper={"position_m": [60.0, 30.0]},
                                        protocols=["full_ue", "full_es", "uieg", "ciag", "esuc"])
    parallel_api_test(par, num_cycles=20)
    par.reset(seed=1)
    _, _, _, _, infos = par.step({a: par.action_space(a).sample() for a in par.agents})
    assert all(0.0 <= i["leakage"] <= 1.0 for i in infos.values())


def test_leakage_score_is_the_best_copy_against_the_user_output():
    import torch

    from meg_gym.eavesdropper import leakage_score

    g = torch.Generator().manual_seed(0)
    user = torch.rand((3, 32, 32), generator=g)
    noise = torch.rand((3, 32, 32), generator=g)
    assert leakage_score([], user, "a red cube", None, 0.5) == 0.0  # nothing read: nothing learnt
    assert leakage_score([user.clone()], user, "a red cube", None, 0.5) == pytest.approx(1.0)
    low = leakage_score([noise], user, "a red cube", None, 0.5)
    assert 0.0 <= low < 0.2 and leakage_score([noise, user.clone()], user, "", None, 0.5) == pytest.approx(1.0)

    class Judge:  # a prompt-fidelity judge that finds every image on-prompt
        def score(self, image, prompt):
            return 1.0

    assert leakage_score([noise], user, "a red cube", Judge(), 0.5) == pytest.approx(0.5 * low + 0.5)


@pytest.mark.slow  # four live generations with the eavesdropper's own: 20-80 s on this project's CPU
def test_live_the_eavesdropper_finishes_the_generation_from_its_copy():
    from meg_gym.system import Decision, MegSystem
    from meg_gym.workload import sample_request

    sc = load_scenario("case_study", eavesdropper={"snr_db": 0.0})
    system = MegSystem(sc)
    req = sample_request(np.random.default_rng(0), system.comps.image_size)
    clean = {(0, "ul"): 200.0, (0, "dl"): 200.0}
    o = system.serve(req, Decision("full_ue"), snr_db=clean, use_queues=False, eve_snr_db=clean)
    assert o.leakage == 0.0  # nothing sent
    deaf = {(0, "ul"): -np.inf, (0, "dl"): -np.inf}
    assert system.serve(req, Decision("full_es"), snr_db=clean, use_queues=False, eve_snr_db=deaf).leakage == 0.0
    # an exact copy of the image sent down is the user's output: SSIM 1, and the user's own prompt fidelity
    o = system.serve(req, Decision("full_es"), snr_db=clean, use_queues=False,
                     eve_snr_db={(0, "ul"): -np.inf, (0, "dl"): 200.0})
    w = sc.reward.ssim_weight
    assert o.leakage == pytest.approx(w + (1 - w) * o.fidelity, abs=1e-6)
    # a seed heard through noise: the eavesdropper's own generation, further from the user's
    noisy = system.serve(req, Decision("ciag"), snr_db=clean, use_queues=False,
                         eve_snr_db={(0, "ul"): -20.0, (0, "dl"): -np.inf})
    assert 0.0 < noisy.leakage < o.leakage


@pytest.mark.slow  # eight live multi-ES generations and the eavesdropper's own: 1-3 min on this project's CPU
def test_live_multi_es_eavesdropper_combines_the_sends_it_overhears():
    from meg_gym.system import Decision, MegSystem
    from meg_gym.workload import sample_request

    sc = load_scenario("multi_es")
    system = MegSystem(sc)
    req = sample_request(np.random.default_rng(0), system.comps.image_size)
    clean = {(i, link): 200.0 for i in range(sc.num_es) for link in ("ul", "dl")}

    def leak(protocol, *heard):  # the eavesdropper hears exactly the (ES, hop) links named, bit-exact
        eve = {key: (200.0 if key in heard else -np.inf) for key in clean}
        return system.serve(req, Decision(protocol, (0, 1)), snr_db=clean, use_queues=False, eve_snr_db=eve)

    # UIDCG: one strip of the seed to each ES; with both the eavesdropper runs the cooperative denoise itself
    assert leak("uidcg", (0, "ul")).leakage == 0.0  # half a seed: the joint stage needs both strips
    assert leak("uidcg", (0, "ul"), (1, "ul")).leakage > 0.5
    # UIDG: each ES's image sent down; with both, its pick is the user's: SSIM 1 and the user's own fidelity
    o = leak("uidg", (0, "dl"), (1, "dl"))
    w = sc.reward.ssim_weight
    assert o.leakage == pytest.approx(w + (1 - w) * o.fidelity, abs=1e-6)
    # DCSUC: both sketch strips sent down are merged and completed as the UE does
    assert leak("dcsuc", (0, "dl"), (1, "dl")).leakage > 0.5


# -- the multi-ES views (issue 18): es_coordination_v1 and MEG/ModelCaching-v0 through the one core ---------------
_EVE_AT = {"position_m": [60.0, 60.0]}  # the middle of es_coordination's four ESs (0..120 m square)


def _coordination(**kw):
    """es_coordination_v1 with an eavesdropper; UE u asks ES u % 4 for the u-th protocol (two UEs per ES,
    slots 2 and 3 empty), so the test knows every slot's request without reading the env's routing."""
    def policy(world, rng, protocols):
        return [(protocols[u % len(protocols)], u % world.num_es) for u in range(world.ues)]

    return envs.es_coordination_v1.parallel_env(num_ues=8, ue_policy=policy, eavesdropper=_EVE_AT, **kw)


def _placements(env, modes):
    """Each UE's placement under ``modes[i][j]`` for ES i's slot j (the env's documented rules: reject is
    Full UE, cooperate the cooperative protocol with the partner, hand-over the partner alone)."""
    from envs.es_coordination import COOPERATIVE

    w = env.world
    ul = w.snr_table_db()[0, :, :, 0]
    out = np.full(w.ues, w.placement_index("full_ue", (0,)))
    for u in range(w.ues):
        i, j, p = u % w.num_es, u // w.num_es, env.ue_protocols[u % len(env.ue_protocols)]
        part = int(np.argmax(np.where(np.arange(w.num_es) == i, -np.inf, ul[u])))
        mode = modes[i][j]
        out[u] = {0: out[u], 1: w.placement_index(p, (i,)), 2: w.placement_index(COOPERATIVE[p], (i, part)),
                  3: w.placement_index(p, (part,))}[mode]
    return out


def test_es_coordination_leakage_is_the_cores_per_request():
    import copy

    env = _coordination(reward_type="vector", local_ratio=1.0)
    env.reset(seed=3)
    w = env.world
    k_leak = w.terms.index("leakage")
    seen = []
    for step in range(6):
        modes = [[(i + j + step) % 4 for j in range(env.slots)] for i in range(w.num_es)]  # all four modes
        actions = {f"es_{i}": np.array([x for m in modes[i] for x in (m, 2)]) for i in range(w.num_es)}
        placement = _placements(env, modes)
        twin = copy.deepcopy(w)  # the same world state: the core stepped with the same placements directly
        _, rewards, _, _, infos = env.step(actions)
        want = twin.step(placement[None], np.ones((1, w.ues)))
        for i in range(w.num_es):
            us = [i, i + w.num_es]  # its two slots' UEs
            got = infos[f"es_{i}"]["leakage"]
            assert got.shape == (env.slots,) and np.isnan(got[2:]).all()
            assert np.array_equal(got[:2], want.leakage[0, us])
            assert rewards[f"es_{i}"][k_leak] == pytest.approx(-want.leakage[0, us].mean(), rel=1e-6)
        seen.append(want.leakage[0])
    seen = np.concatenate(seen)
    assert ((seen >= 0.0) & (seen <= 1.0)).all() and (seen > 0.05).any()  # something sent was overheard


def test_single_env_multi_es_leakage_is_the_cores():
    import copy

    env = gym.make("MEG/MultiES-v1", eavesdropper={"position_m": [60.0, 30.0]})
    env.reset(seed=4)
    u = env.unwrapped
    for protocol, es_ids in [("uidcg", (0, 1)), ("dcsuc", (1, 2)), ("uidg", (0, 2)), ("full_ue", (0,))]:
        p = u.world.placement_index(protocol, es_ids)
        twin = copy.deepcopy(u.world)
        _, _, _, _, info = env.step(np.array([p, len(u.shares) - 1]))
        want = twin.step(np.full((1, 1), p), np.full((1, 1), u.shares[-1]))
        assert info["leakage"] == want.leakage[0, 0] and info["rewards"]["leakage"] == -want.leakage[0, 0]
        assert (info["leakage"] == 0.0) == (protocol == "full_ue")


def test_es_coordination_full_ue_leaks_nothing_and_the_eavesdropper_is_observed():
    env = _coordination()
    obs, infos = env.reset(seed=5)
    w = env.world
    n, k = w.num_es, env.slots
    assert obs["es_0"].shape == (3 * n + 1 + 11 * k,) and np.isnan(infos["es_0"]["leakage"]).all()
    eve = w.eve_snr_table_db()[0] / 30.0  # (ues, 1 + num_es)
    assert np.allclose(obs["es_1"][3 * n + 1 + 8: 3 * n + 1 + 10], [eve[1, 0], eve[1, 2]], atol=1e-6)  # UE 1, ES 1
    for _ in range(3):  # every slot rejected: every request is Full UE's, which sends nothing
        _, _, _, _, infos = env.step({a: np.zeros(2 * k, dtype=np.int64) for a in env.agents})
        assert all((info["leakage"][:2] == 0.0).all() for info in infos.values())


def test_es_coordination_with_an_eavesdropper_passes_the_pettingzoo_api_test():
    from pettingzoo.test import parallel_api_test

    parallel_api_test(_coordination(), num_cycles=20)


def test_model_caching_observes_the_eavesdropper_and_reports_leakage():
    from gymnasium.utils.env_checker import check_env

    env = gym.make("MEG/ModelCaching-v0", eavesdropper={"position_m": [60.0, 10.0]})
    check_env(env.unwrapped)
    plain = gym.make("MEG/ModelCaching-v0")
    assert env.observation_space.shape[0] == plain.observation_space.shape[0] + 3  # its SNR to the UE and 2 ESs
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        obs, _, _, _, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        assert 0.0 < info["leakage"] <= 1.0 and info["rewards"]["leakage"] == -info["leakage"]  # Full ES sends


def test_per_es_caching_agents_report_the_leakage_of_the_requests_they_served():
    par = envs.model_caching_v0.parallel_env(num_ues=4, eavesdropper={"position_m": [60.0, 10.0]})
    par.reset(seed=3)
    for _ in range(3):
        _, rewards, _, _, infos = par.step({a: par.action_space(a).sample() for a in par.agents})
        served = [i for i in infos.values() if i["requests"]]
        assert served and all(0.0 < i["leakage"] <= 1.0 for i in served)  # Full ES sends the image both ways
        assert all(np.isnan(i["leakage"]) for i in infos.values() if not i["requests"])
    plain = envs.model_caching_v0.parallel_env(num_ues=4)
    plain.reset(seed=3)
    assert "leakage" not in plain.step({a: 0 for a in plain.agents})[4]["es_0"]


def test_multi_es_views_config_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="'eavesdropper.position_m' is required for channel kind 'umi'") as err:
        envs.es_coordination_v1.parallel_env(eavesdropper={"snr_db": 3.0})
    assert "\n" not in str(err.value)
    # a table without the cooperative protocols es_coordination offers: named, with the command that measures them
    import json

    shipped = json.loads(leakage_table_path(load_scenario("eavesdropper")).read_text())
    for part in ("curves", "exact"):
        shipped[part] = {p: v for p, v in shipped[part].items() if p not in ("uidcg", "dcsuc")}
    (tmp_path / "t.json").write_text(json.dumps(shipped))
    with pytest.raises(LeakageError, match=r"lacks protocols \['dcsuc', 'uidcg'\]: run meg-gym calibrate") as err:
        envs.es_coordination_v1.parallel_env(eavesdropper={**_EVE_AT, "leakage_table": str(tmp_path / "t.json")})
    assert "\n" not in str(err.value)
