"""UE energy: what the phone spends computing, transmitting and (optionally) receiving.

``energy = compute_s * compute_power_w + tx_airtime_s * tx_power_w + rx_airtime_s * rx_power_w``

Typical values and where they come from:

* Compute power: the device preset's ``power_w`` (:data:`meg_gym.compute.DEVICES`; 6 W for
  ``phone_npu``, an assumption within the 5-8 W a flagship SoC draws under sustained load).
* Transmit power: a power class 3 NR UE transmits at most 23 dBm (3GPP TS 38.101-1,
  Table 6.2.1-1, UE power class 3), i.e. :data:`UE_TX_RADIATED_POWER_W` = 0.1995 W
  *radiated*. The battery pays more: the power amplifier (PA) converts DC to RF at an
  efficiency of roughly a third at full power, plus the transceiver's own consumption.
  :func:`tx_electrical_power_w` turns a radiated power into the drawn one. Which of the
  two a study uses is its choice; :mod:`meg_gym.timing` charges the radiated power.
* Receive power: while receiving, the cellular modem and RF front end draw on the order of
  a watt (LTE measurements: Jensen et al., "LTE UE power consumption model", IEEE VTC-Fall
  2012; Lauridsen et al., "An empirical LTE smartphone power model with a view to energy
  efficiency evolution", Intel Technology Journal 18(1), 2014). :data:`UE_RX_POWER_W` = 1 W
  is an assumption of that order, not a measured figure.
"""

from __future__ import annotations

from dataclasses import dataclass

from meg_gym.compute._validate import ComputeError, check_finite, check_positive, check_range

__all__ = [
    "UE_PA_EFFICIENCY",
    "UE_RX_POWER_W",
    "UE_TX_POWER_DBM",
    "UE_TX_RADIATED_POWER_W",
    "UeEnergy",
    "dbm_to_w",
    "tx_electrical_power_w",
    "ue_energy",
    "ue_energy_j",
]

UE_TX_POWER_DBM = 23.0
"""Maximum UE output power, power class 3 (3GPP TS 38.101-1, Table 6.2.1-1)."""


def dbm_to_w(power_dbm: float) -> float:
    """Watts from dBm: ``10 ** ((dBm - 30) / 10)``."""
    return 10.0 ** ((check_finite("power_dbm", power_dbm) - 30.0) / 10.0)


UE_TX_RADIATED_POWER_W = dbm_to_w(UE_TX_POWER_DBM)
"""23 dBm radiated, 0.1995 W."""

UE_PA_EFFICIENCY = 0.3
"""Assumption: DC-to-RF efficiency of a handset power amplifier at full output (about a third)."""

UE_RX_POWER_W = 1.0
"""Assumption: power drawn while receiving (order of magnitude of the LTE measurements cited above)."""


def tx_electrical_power_w(radiated_w: float = UE_TX_RADIATED_POWER_W, pa_efficiency: float = UE_PA_EFFICIENCY,
                          circuit_w: float = 0.0) -> float:
    """Power drawn from the battery to radiate ``radiated_w``: ``radiated_w / pa_efficiency + circuit_w``."""
    radiated = check_positive("radiated_w", radiated_w, allow_zero=True)
    eff = check_range("pa_efficiency", pa_efficiency, 0.0, 1.0, high_open=False)
    if eff == 0.0:
        raise ComputeError(f"'pa_efficiency' must be in (0, 1] (got {pa_efficiency!r})")
    return radiated / eff + check_positive("circuit_w", circuit_w, allow_zero=True)


@dataclass(frozen=True)
class UeEnergy:
    """UE energy split into its terms, in joules."""

    compute_j: float
    tx_j: float
    rx_j: float = 0.0

    @property
    def total_j(self) -> float:
        return self.compute_j + self.tx_j + self.rx_j


def ue_energy(compute_s: float, compute_power_w: float, tx_airtime_s: float, tx_power_w: float,
              rx_airtime_s: float = 0.0, rx_power_w: float = UE_RX_POWER_W) -> UeEnergy:
    """The UE's energy per term (see :func:`ue_energy_j`)."""
    compute_s = check_positive("compute_s", compute_s, allow_zero=True)
    tx_airtime_s = check_positive("tx_airtime_s", tx_airtime_s, allow_zero=True)
    rx_airtime_s = check_positive("rx_airtime_s", rx_airtime_s, allow_zero=True)
    compute_power_w = check_positive("compute_power_w", compute_power_w, allow_zero=True)
    tx_power_w = check_positive("tx_power_w", tx_power_w, allow_zero=True)
    rx_power_w = check_positive("rx_power_w", rx_power_w, allow_zero=True)
    return UeEnergy(compute_s * compute_power_w, tx_airtime_s * tx_power_w, rx_airtime_s * rx_power_w)


def ue_energy_j(compute_s: float, compute_power_w: float, tx_airtime_s: float, tx_power_w: float,
                rx_airtime_s: float = 0.0, rx_power_w: float = UE_RX_POWER_W) -> float:
    """UE energy in joules: compute + transmit (+ receive).

    ``compute_s * compute_power_w + tx_airtime_s * tx_power_w + rx_airtime_s * rx_power_w``.
    Durations in seconds, powers in watts; all must be finite and >= 0. ``tx_power_w`` is
    whatever power the study charges for transmitting: radiated (:data:`UE_TX_RADIATED_POWER_W`)
    or drawn (:func:`tx_electrical_power_w`).
    """
    return ue_energy(compute_s, compute_power_w, tx_airtime_s, tx_power_w, rx_airtime_s, rx_power_w).total_j
