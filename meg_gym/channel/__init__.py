"""The radio between the UE and the ESs: link budgets, channel models, tensor transmission.

* :mod:`meg_gym.channel.links`: 3GPP TR 38.901 UMi / UMa path loss, LOS probability,
  shadowing, fading and thermal noise, as pure functions.
* :mod:`meg_gym.channel.mobility`: UE mobility (static, random waypoint, constant velocity).
* :mod:`meg_gym.channel.models`: :data:`CHANNELS` (perfect, awgn, umi, uma), one
  :class:`ChannelModel` interface (``reset`` / ``advance`` / ``snr_db``), :func:`make_channel`.
* :mod:`meg_gym.channel.digital`: the digital link (TR 36.942 rate, block fading, outage,
  HARQ) that the timing walk runs for every digital send.
* :mod:`meg_gym.channel.transmission`: :func:`transmit` a real tensor (analog or digital),
  :func:`transmit_text`, :func:`airtime_s`.
"""

from meg_gym.channel.digital import DigitalLink, coherence_time_s, digital_transfer, outage_probability
from meg_gym.channel.links import (
    FADINGS,
    SCENARIOS_38901,
    Tr38901Scenario,
    db_to_linear,
    linear_to_db,
    los_probability_uma,
    los_probability_umi,
    pathloss_uma_los_db,
    pathloss_uma_nlos_db,
    pathloss_umi_los_db,
    pathloss_umi_nlos_db,
    thermal_noise_dbm,
)
from meg_gym.channel.mobility import MOBILITIES
from meg_gym.channel.models import (
    CHANNELS,
    LINKS,
    LOS_MODES,
    AwgnChannel,
    ChannelModel,
    PerfectChannel,
    UmaChannel,
    UmiChannel,
    channel_params,
    make_channel,
)
from meg_gym.channel.transmission import (
    MODES,
    TextTransmission,
    Transmission,
    airtime_s,
    analog_repetitions,
    dequantize,
    quantize,
    shannon_rate_bps,
    spectral_efficiency,
    transmit,
    transmit_text,
)

__all__ = [
    "CHANNELS",
    "FADINGS",
    "LINKS",
    "LOS_MODES",
    "MOBILITIES",
    "MODES",
    "SCENARIOS_38901",
    "AwgnChannel",
    "ChannelModel",
    "DigitalLink",
    "PerfectChannel",
    "TextTransmission",
    "Tr38901Scenario",
    "Transmission",
    "UmaChannel",
    "UmiChannel",
    "airtime_s",
    "analog_repetitions",
    "channel_params",
    "coherence_time_s",
    "db_to_linear",
    "dequantize",
    "digital_transfer",
    "linear_to_db",
    "los_probability_uma",
    "los_probability_umi",
    "make_channel",
    "outage_probability",
    "pathloss_uma_los_db",
    "pathloss_uma_nlos_db",
    "pathloss_umi_los_db",
    "pathloss_umi_nlos_db",
    "quantize",
    "shannon_rate_bps",
    "spectral_efficiency",
    "thermal_noise_dbm",
    "transmit",
    "transmit_text",
]
