"""Where the model's tensors live: the torch device and dtype of live mode and of ``calibrate``.

The scenario names them as plain strings (``torch_device``: ``cpu``, ``cuda``, ``cuda:N``,
``mps``; ``torch_dtype``: ``fp32``, ``fp16``, ``bf16``), checked here without importing torch
(:func:`device_error`, :data:`DTYPES`); :func:`resolve_device` and :func:`resolve_dtype` turn
them into torch objects when a model is built, and an unavailable device is a one-line error
then. See ``docs/models.md`` for what runs where.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["DEVICES", "DTYPES", "device_error", "resolve_device", "resolve_dtype"]

#: the accepted forms of ``torch_device`` (``cuda:N`` stands for any GPU index)
DEVICES = ("cpu", "cuda", "cuda:N", "mps")
#: ``torch_dtype`` name -> the torch dtype's attribute name
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}

_DEVICE_RE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


def device_error(value: object) -> str | None:
    """Why ``value`` is not a device name (a message after the field's name), or None if it is one."""
    if isinstance(value, str) and _DEVICE_RE.match(value):
        return None
    return f"must be one of {list(DEVICES)} (got {value!r})"


def resolve_device(name: str) -> torch.device:
    """The torch device ``name`` (a :data:`DEVICES` form); raises a one-line ``ValueError`` if this
    machine's torch cannot use it (no CUDA build or GPU, a GPU index out of range, no MPS)."""
    import torch

    err = device_error(name)
    if err is not None:
        raise ValueError(f"'torch_device' {err}")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"'torch_device' is {name!r} but torch {torch.__version__} sees no CUDA device "
                             f"(torch.cuda.is_available() is False); use 'cpu' or a CUDA build of torch on a GPU")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"'torch_device' is {name!r} but this machine has {count} CUDA device(s): "
                             f"use cuda:0..cuda:{count - 1}")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"'torch_device' is {name!r} but torch.backends.mps.is_available() is False "
                         f"(MPS needs Apple silicon and a torch built with MPS); use 'cpu'")
    return device


def resolve_dtype(name: str) -> torch.dtype:
    """The torch dtype of a :data:`DTYPES` name (``fp16`` -> ``torch.float16``)."""
    import torch

    if name not in DTYPES:
        raise ValueError(f"'torch_dtype' must be one of {list(DTYPES)} (got {name!r})")
    return getattr(torch, DTYPES[name])
