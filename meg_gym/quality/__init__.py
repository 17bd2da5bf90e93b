"""Quality of a generated image: metrics, the attribute classifier, profiled mode's calibrated tables."""

# calibrate's default SNR axis (dB). Here, in the package's light module, so that ``meg-gym calibrate --help``
# can state it without importing numba (meg_gym.quality.calibration)
DEFAULT_SNR_GRID_DB = [-20.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0, 30.0]
