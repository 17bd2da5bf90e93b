"""The step-cost cache: shipped counts equal a fresh count; renamed ES ids; stale entries recounted."""

import json

import pytest

from meg_gym import costs
from meg_gym.config import load_scenario
from meg_gym.system import MegSystem


def _system(**overrides):
    return MegSystem(load_scenario("default", backend="profiled", **overrides), judge=None)


@pytest.mark.parametrize("protocol,es_ids", [("ciag", (0,)), ("uidcg", (0, 1))])
def test_shipped_counts_equal_a_fresh_count(protocol, es_ids):
    system = _system()
    key = costs.entry_key(system.cost_comps, protocol, len(es_ids), system.settings,
                          costs.transmission_key(system.scenario))
    shipped = json.loads((costs.SHIPPED_DIR / "tiny.json").read_text())
    assert key in shipped, "run 'meg-gym costs --model tiny --max-es 6' to ship the counts"
    fresh = system._measure_costs(protocol, len(es_ids))
    assert costs._decode(shipped[key]["rows"]) == fresh


def test_costs_on_other_es_ids_are_renamed(tmp_path, monkeypatch):
    monkeypatch.setenv("MEG_GYM_CACHE", str(tmp_path))
    system = _system(num_es=3)
    base = system.costs("uidg", (0, 1))
    moved = system.costs("uidg", (1, 2))
    assert [(c.flops, c.payload_bits) for c in base] == [(c.flops, c.payload_bits) for c in moved]
    assert {c.node for c in moved} <= {"ue", "es1", "es2"}
    assert any("es2" in c.dst for c in moved)


def test_other_transmission_settings_are_counted_not_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("MEG_GYM_CACHE", str(tmp_path))
    b16 = _system().costs("ciag", (0,))
    b8 = _system(transmission={"bits_per_value": 8}).costs("ciag", (0,))
    sent16 = sum(c.payload_bits for c in b16 if c.kind == "send" and c.values)
    sent8 = sum(c.payload_bits for c in b8 if c.kind == "send" and c.values)
    assert sent16 == 2 * sent8
    assert (tmp_path / "costs" / "tiny.json").is_file()  # the new counts went to the user cache
