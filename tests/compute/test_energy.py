"""UE energy terms and the power figures."""

from __future__ import annotations

import pytest

from meg_gym.compute import (
    UE_PA_EFFICIENCY,
    UE_RX_POWER_W,
    UE_TX_RADIATED_POWER_W,
    ComputeError,
    dbm_to_w,
    tx_electrical_power_w,
    ue_energy,
    ue_energy_j,
)


def test_power_class_3_is_23_dbm():
    assert UE_TX_RADIATED_POWER_W == pytest.approx(0.1995, abs=1e-4)
    assert dbm_to_w(30.0) == pytest.approx(1.0)


def test_energy_terms_add_up():
    e = ue_energy(2.0, 6.0, 0.5, 0.2, rx_airtime_s=0.25, rx_power_w=1.0)
    assert (e.compute_j, e.tx_j, e.rx_j) == pytest.approx((12.0, 0.1, 0.25))
    assert e.total_j == pytest.approx(12.35)
    assert ue_energy_j(2.0, 6.0, 0.5, 0.2) == pytest.approx(12.1)  # no receive by default
    assert ue_energy_j(0.0, 6.0, 0.0, 0.2, rx_airtime_s=1.0) == pytest.approx(UE_RX_POWER_W)


def test_pa_efficiency_turns_radiated_into_drawn_power():
    assert tx_electrical_power_w() == pytest.approx(UE_TX_RADIATED_POWER_W / UE_PA_EFFICIENCY)
    assert tx_electrical_power_w(0.2, 0.5, circuit_w=0.1) == pytest.approx(0.5)
    with pytest.raises(ComputeError, match=r"'pa_efficiency' must be in \(0, 1\] \(got 0\)"):
        tx_electrical_power_w(0.2, 0)
    with pytest.raises(ComputeError, match=r"'pa_efficiency' must be in \[0, 1\] \(got 1.5\)"):
        tx_electrical_power_w(0.2, 1.5)


@pytest.mark.parametrize("field", ["compute_s", "compute_power_w", "tx_airtime_s", "tx_power_w", "rx_airtime_s",
                                   "rx_power_w"])
def test_negative_terms_are_refused(field):
    args = dict(compute_s=1.0, compute_power_w=1.0, tx_airtime_s=1.0, tx_power_w=1.0, rx_airtime_s=1.0,
                rx_power_w=1.0)
    args[field] = -1.0
    with pytest.raises(ComputeError, match=rf"'{field}' must be >= 0 \(got -1.0\)"):
        ue_energy_j(**args)
