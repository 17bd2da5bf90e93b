"""Objects' state as data, without pickle: JSON for the structure, one ``.npz`` for the arrays.

A checkpoint of a run (the envs' worlds, the random generators, the VecNormalize statistics,
a replay buffer) must be restorable, and a crafted checkpoint must not run code when it is
loaded: ``pickle.load`` of a file from someone else's run folder can call anything (Python's
docs: "never unpickle data received from an untrusted source"). So state is written as data:

* :func:`encode` walks a value (an object's attributes: :func:`attrs_of`) and encodes numbers, strings, ``None``,
  lists, tuples, dicts, NumPy arrays and scalars, torch tensors and ``np.random.Generator``
  states; objects of the project's own classes (``meg_gym``, ``envs``, ``agents``) and
  dataclasses are walked into; anything else (torch modules, Gymnasium spaces, functions,
  files) is left out, to be kept as the target has it. The same object met twice is stored
  once and referenced (identity is kept, as pickle keeps it).
* :func:`decode` writes the state into a like-built target (a fresh env of the same config),
  in place where it can. Nothing in the file names code to run: a project object must already be
  there with the same class, except a dataclass of the project's own modules, which is built
  field by field (``object.__new__``, no ``__init__``); a generator's bit generator must be one
  of NumPy's (:data:`BIT_GENERATORS`). A state that does not fit its target raises :class:`StateError`.
* :func:`save_state` / :func:`load_state` put a tree in ``<stem>.json`` + ``<stem>.npz``
  (``np.load(allow_pickle=False)``), each written atomically (:func:`meg_gym.files.atomic_write`).
"""

from __future__ import annotations

import dataclasses
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from meg_gym.files import atomic_write

__all__ = ["BIT_GENERATORS", "StateError", "attrs_of", "decode", "encode", "load_state", "save_state"]

BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
_PROJECT = ("meg_gym", "envs", "agents")


class StateError(ValueError):
    """A saved state that cannot be written into its target (another config, another version, a crafted file)."""


def _is_project(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] in _PROJECT


def attrs_of(obj: Any) -> dict[str, Any]:
    """An object's attributes (its ``__dict__`` and slots), as :func:`encode` walks them."""
    out = dict(getattr(obj, "__dict__", {}))
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if name not in ("__dict__", "__weakref__") and hasattr(obj, name):
                out[name] = getattr(obj, name)
    return out


class _Encoder:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.seen: dict[int, int] = {}
        self.alive: list[Any] = []  # keeps encoded objects alive so that their ids stay unique

    def array(self, a: np.ndarray) -> str:
        if a.dtype.hasobject:
            raise StateError(f"an array of Python objects (dtype {a.dtype}) cannot be saved as data")
        key = f"a{len(self.arrays)}"
        self.arrays[key] = np.ascontiguousarray(a)
        return key

    def __call__(self, v: Any) -> Any:
        if isinstance(v, np.generic):  # before float: np.float64 is a float
            item = v.item()
            return {"np": v.dtype.str, "v": repr(item) if isinstance(item, float) and not np.isfinite(item) else item}
        if v is None or isinstance(v, (bool, int, float, str)):
            return v if not isinstance(v, float) or np.isfinite(v) else {"f": repr(float(v))}
        if id(v) in self.seen:
            return {"ref": self.seen[id(v)]}
        ref = len(self.seen)
        self.seen[id(v)] = ref
        self.alive.append(v)
        node = self._node(v)
        if node is not None:
            node["id"] = ref
        return node

    def _node(self, v: Any) -> dict[str, Any] | None:
        if isinstance(v, np.ndarray):
            return {"a": self.array(v)}
        if isinstance(v, list):
            return {"l": [self(x) for x in v]}
        if isinstance(v, tuple) and not hasattr(v, "_fields"):
            return {"t": [self(x) for x in v]}
        if isinstance(v, dict):
            return {"d": [[self(k), self(x)] for k, x in v.items()]}
        if isinstance(v, np.random.Generator):
            return {"rng": self(v.bit_generator.state)}
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(v, torch.Tensor):
            if isinstance(v, torch.nn.Parameter) or v.device.type != "cpu":
                return {"keep": 1}
            return {"tensor": self.array(v.detach().numpy()), "dtype": str(v.dtype)}
        if (torch is not None and isinstance(v, torch.nn.Module)) or isinstance(v, type):
            return {"keep": 1}
        # the model and the frozen configs: rebuilt identically from the config, never saved
        if type(v).__name__ == "Components" or type(v).__module__ == "meg_gym.config":
            return {"keep": 1}
        if (_is_project(v) or dataclasses.is_dataclass(v)) and not isinstance(v, tuple):
            return {"obj": f"{type(v).__module__}:{type(v).__qualname__}",
                    "attrs": {k: self(x) for k, x in attrs_of(v).items()}}
        return {"keep": 1}  # another library's object (a space, a function, a file): the target keeps its own


def encode(value: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """``value`` as (a JSON-ready tree, its arrays by key)."""
    enc = _Encoder()
    return enc(value), enc.arrays


class _Decoder:
    def __init__(self, arrays: Any) -> None:
        self.arrays = arrays
        self.made: dict[int, Any] = {}

    def array(self, key: Any) -> np.ndarray:
        if not isinstance(key, str) or key not in self.arrays:
            raise StateError(f"the state refers to array {key!r}, which its .npz does not hold")
        return np.array(self.arrays[key])

    def __call__(self, node: Any, current: Any = None) -> Any:
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list) or not isinstance(node, dict):
            raise StateError(f"a state node must be a value or a tagged object (got {type(node).__name__})")
        if "f" in node:
            return float(node["f"])
        if "np" in node:
            dtype = np.dtype(node["np"])
            if dtype.hasobject:
                raise StateError("a NumPy object scalar cannot be loaded as data")
            return dtype.type(float(node["v"]) if isinstance(node["v"], str) else node["v"])
        if "ref" in node:
            if node["ref"] not in self.made:
                raise StateError(f"the state refers to object {node['ref']!r} before it is defined")
            return self.made[node["ref"]]
        out = self._value(node, current)
        if "id" in node:
            self.made[node["id"]] = out
        return out

    def _value(self, node: dict[str, Any], current: Any) -> Any:
        if "keep" in node:
            return current
        if "a" in node:
            return self.array(node["a"])
        if "l" in node or "t" in node:
            items = node.get("l", node.get("t"))
            cur = current if isinstance(current, (list, tuple)) and len(current) == len(items) else [None] * len(items)
            if "l" in node:  # a list is restored in place: other holders of it see the same list
                out = current if isinstance(current, list) else []
                fresh = [self(x, c) for x, c in zip(items, cur)]
                out[:] = fresh
                return out
            return tuple(self(x, c) for x, c in zip(items, cur))
        if "d" in node:
            out_d = current if isinstance(current, dict) else {}
            pairs = []
            for k, x in node["d"]:
                key = self(k)
                key = tuple(key) if isinstance(key, list) else key
                pairs.append((key, self(x, out_d.get(key) if isinstance(key, (str, int, float, tuple)) else None)))
            out_d.clear()
            out_d.update(pairs)
            return out_d
        if "rng" in node:
            state = self(node["rng"])
            name = state.get("bit_generator") if isinstance(state, dict) else None
            if name not in BIT_GENERATORS:
                raise StateError(f"a generator's bit generator must be one of {list(BIT_GENERATORS)} (got {name!r})")
            gen = current if isinstance(current, np.random.Generator) and \
                type(current.bit_generator).__name__ == name else np.random.Generator(getattr(np.random, name)())
            gen.bit_generator.state = state
            return gen
        if "tensor" in node:
            import torch

            t = torch.from_numpy(self.array(node["tensor"]))
            if isinstance(current, torch.Tensor) and current.shape == t.shape and current.dtype == t.dtype:
                current.copy_(t)
                return current
            return t
        if "obj" in node:
            return self._object(node, current)
        raise StateError(f"unknown state node with keys {sorted(node)[:5]}")

    def _object(self, node: dict[str, Any], current: Any) -> Any:
        name = node["obj"]
        have = f"{type(current).__module__}:{type(current).__qualname__}" if current is not None else None
        if have != name:
            current = _new_dataclass(name)
        attrs = node.get("attrs")
        if not isinstance(attrs, dict):
            raise StateError(f"the state of a {name} must hold its attributes")
        now = attrs_of(current)
        for key, sub in attrs.items():
            object.__setattr__(current, key, self(sub, now.get(key)))
        return current


def _new_dataclass(name: Any) -> Any:
    """An empty instance of a project dataclass named ``module:qualname`` (the only objects a state builds)."""
    module, _, qual = str(name).partition(":")
    if module.split(".")[0] not in _PROJECT or module not in sys.modules:
        raise StateError(f"the state holds a {name}, which the target has not got where the state has it "
                         f"(another config or version?)")
    obj: Any = sys.modules[module]
    for part in qual.split("."):
        obj = getattr(obj, part, None)
    if not (isinstance(obj, type) and dataclasses.is_dataclass(obj)):
        raise StateError(f"the state holds a {name}, which the target has not got where the state has it "
                         f"(another config or version?)")
    return object.__new__(obj)


def decode(tree: Any, arrays: Any, current: Any = None) -> Any:
    """A value from :func:`encode`'s (tree, arrays), written into ``current`` where it can be."""
    return _Decoder(arrays)(tree, current)


def save_state(stem: str | Path, tree: Any, arrays: dict[str, np.ndarray]) -> tuple[Path, Path]:
    """Write ``<stem>.json`` (the tree) and ``<stem>.npz`` (the arrays), each atomically."""
    stem = Path(stem)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    npz = atomic_write(stem.with_name(stem.name + ".npz"), buf.getvalue())
    js = atomic_write(stem.with_name(stem.name + ".json"), json.dumps(tree))
    return js, npz


def load_state(stem: str | Path) -> tuple[Any, Any]:
    """(tree, arrays) from :func:`save_state`'s files; unreadable files raise :class:`StateError`."""
    stem = Path(stem)
    try:
        tree = json.loads(stem.with_name(stem.name + ".json").read_text(encoding="utf-8"))
        with np.load(stem.with_name(stem.name + ".npz"), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise StateError(f"state {stem} could not be read ({str(exc).splitlines()[0] if str(exc) else exc})") from None
    return tree, arrays
