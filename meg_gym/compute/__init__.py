"""Compute models of meg_gym: FLOP counting, device presets, ES queues, UE energy.

* :mod:`~meg_gym.compute.flops`: :func:`count_flops` runs a stage under torch's
  ``FlopCounterMode`` (meta tensors work); :class:`FlopCache` counts each (model, stage,
  input shapes) once; :func:`measure_ldm_flops` gives an LDM's per-stage FLOPs.
* :mod:`~meg_gym.compute.devices`: :data:`DEVICES`, the presets (effective FLOP/s derived
  from published Stable Diffusion it/s, power), and :func:`device_profile`.
* :mod:`~meg_gym.compute.queues`: :class:`EsQueue`, an ES's FIFO queue with Poisson
  background load, simulated as its workload process.
* :mod:`~meg_gym.compute.energy`: :func:`ue_energy_j` and the UE power figures.

Compute latency of a stage = its FLOPs / the device's ``flops_per_s``; on an ES the job
also waits in the :class:`EsQueue`.
"""

from meg_gym.compute._validate import ComputeError
from meg_gym.compute.devices import CFG_STEP_FLOPS, DEVICE_KINDS, DEVICES, DeviceProfile, device_profile
from meg_gym.compute.energy import (
    UE_PA_EFFICIENCY,
    UE_RX_POWER_W,
    UE_TX_POWER_DBM,
    UE_TX_RADIATED_POWER_W,
    UeEnergy,
    dbm_to_w,
    tx_electrical_power_w,
    ue_energy,
    ue_energy_j,
)
from meg_gym.compute.flops import FlopCache, LdmFlops, count_flops, measure_ldm_flops, shape_signature
from meg_gym.compute.queues import EsQueue, EsQueueBatch, QueueResult

__all__ = [
    "CFG_STEP_FLOPS",
    "DEVICES",
    "DEVICE_KINDS",
    "ComputeError",
    "DeviceProfile",
    "EsQueue",
    "EsQueueBatch",
    "FlopCache",
    "LdmFlops",
    "QueueResult",
    "UE_PA_EFFICIENCY",
    "UE_RX_POWER_W",
    "UE_TX_POWER_DBM",
    "UE_TX_RADIATED_POWER_W",
    "UeEnergy",
    "count_flops",
    "dbm_to_w",
    "device_profile",
    "measure_ldm_flops",
    "shape_signature",
    "tx_electrical_power_w",
    "ue_energy",
    "ue_energy_j",
]
