"""meg_gym: Mobile Edge Generation over a real split latent diffusion model.

The core simulation library (no gymnasium/pettingzoo/SB3 imports): model components and
stages (:mod:`meg_gym.ldm`), the protocol table (:mod:`meg_gym.protocols`), channel and
compute models, the executor and timing model, quality metrics, :class:`MegSystem` and the
world core :class:`meg_gym.core.Core` behind every environment.
"""

import os

# transformers warns at import that torchvision is absent (we use no image processor);
# keep its log quiet unless the user asked for more
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

__version__ = "0.1.0"
