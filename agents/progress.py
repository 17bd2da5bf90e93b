"""What ``meg-gym train`` shows while it runs: where TensorBoard logs go, and a progress bar.

SB3's own ``ProgressBarCallback`` draws with ``tqdm.rich`` (an extra dependency) and shows
steps only; this bar (plain tqdm) also shows the latest mean episode return from the
Monitor wrappers' ``ep_info_buffer`` (the last 100 episodes, SB3's ``rollout/ep_rew_mean``),
and tqdm's steps/s.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from tqdm import tqdm

__all__ = ["TrainProgressBar", "tensorboard_hint"]


def tensorboard_hint(log_dir: str | Path) -> str:
    """One line: where the TensorBoard logs are and the command that shows them."""
    return f"TensorBoard logs: {log_dir} (view them with: tensorboard --logdir {log_dir})"


class TrainProgressBar(BaseCallback):
    """A tqdm bar over the run's timesteps (a resumed run starts at its checkpoint), with the mean
    return of the last episodes; first prints where the TensorBoard logs go. ``file``: stderr."""

    def __init__(self, file: Any = None, refresh_s: float = 0.5) -> None:
        super().__init__(verbose=0)
        self.file = file
        self.refresh_s = refresh_s
        self.bar: Any = None
        self._shown = 0.0

    def _on_training_start(self) -> None:
        out = self.file or sys.stderr
        if self.model.tensorboard_log:
            print(tensorboard_hint(self.model.tensorboard_log), file=out, flush=True)
        total = int(self.locals.get("total_timesteps", self.model._total_timesteps))
        self.bar = tqdm(total=total, initial=self.model.num_timesteps, desc="train", unit="step", file=out,
                        dynamic_ncols=True)

    def _on_step(self) -> bool:
        self.bar.update(self.model.num_timesteps - self.bar.n)
        now = time.monotonic()
        if now - self._shown >= self.refresh_s:  # the mean over the buffer costs more than a step of a fast env
            self._shown = now
            buf = self.model.ep_info_buffer
            text = f"mean return {np.mean([e['r'] for e in buf]):.2f} ({len(buf)} episodes)" if buf else \
                "mean return - (no episode finished yet)"
            self.bar.set_postfix_str(text, refresh=False)
        return True

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()
