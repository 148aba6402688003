"""The UCI HAPT pickle (a dict of user id -> pandas DataFrames) read without pandas and without
running any code it names: a restricted unpickler that only allows the numpy and pandas globals
such a pickle needs, each mapped to a small stand-in that rebuilds plain numpy arrays."""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np

from seqlab.errors import SeqlabError


class _Array:
    """Stands in for a pickled ndarray; ``__setstate__`` rebuilds it as plain numpy."""

    array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[2], _DType)):
            raise pickle.UnpicklingError(f"unexpected ndarray state {str(state)[:80]}")
        _, shape, dtype, fortran, raw = state
        dtype = dtype.numpy()
        if not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)):
            raise pickle.UnpicklingError(f"bad ndarray shape {shape!r}")
        if dtype.hasobject:  # object arrays (column names) must hold plain values only
            if not (isinstance(raw, list) and all(v is None or type(v) in (str, int, float) for v in raw)):
                raise pickle.UnpicklingError("an object array holds something other than str/int/float/None")
            self.array = np.array(raw, dtype=object).reshape(shape)
            return
        if not isinstance(raw, bytes) or len(raw) != int(np.prod(shape)) * dtype.itemsize:
            raise pickle.UnpicklingError(f"ndarray data of {len(raw) if isinstance(raw, bytes) else type(raw)} bytes does not fit {shape} {dtype}")
        self.array = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()


class _DType:
    """Stands in for a pickled numpy dtype of a fixed set of numeric (or object) kinds."""

    ALLOWED = {"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "O4", "O8"}

    def __init__(self, name: str, align: Any = 0, copy: Any = 1) -> None:
        if name not in self.ALLOWED:
            raise pickle.UnpicklingError(f"dtype {name!r} is not allowed")
        self.name, self.byteorder = name, "="

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) >= 2 and state[1] in ("<", ">", "|", "=")):
            raise pickle.UnpicklingError(f"unexpected dtype state {state!r}")
        self.byteorder = state[1]

    def numpy(self) -> np.dtype:
        dtype = np.dtype(self.name)
        return dtype if self.byteorder in ("|", "=") else dtype.newbyteorder(self.byteorder)


class _Frame:
    """Stands in for a pickled pandas DataFrame: keeps its state, turned into columns later."""

    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def columns(self) -> dict[str, np.ndarray]:
        """Column name -> 1-D array, from the old BlockManager layout (axes + blocks with mgr_locs)."""
        try:
            manager = self.state["_data"]
            layout = manager.state[3]["0.14.1"]
            names = [str(n) for n in _index_values(layout["axes"][0])]
            out: dict[str, np.ndarray] = {}
            for block in layout["blocks"]:
                values, locs = block["values"].array, block["mgr_locs"]
                positions = range(*locs.indices(len(names))) if isinstance(locs, slice) else _Array_values(locs)
                for row, position in enumerate(positions):
                    out[names[int(position)]] = values[row]
            return out
        except (KeyError, IndexError, TypeError, AttributeError) as err:
            raise pickle.UnpicklingError(f"a DataFrame has a layout this reader does not know ({type(err).__name__}: {err})") from None


class _BlockManager:
    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Index:
    def __init__(self, kind: type, spec: Any) -> None:
        self.kind, self.spec = kind, spec


class _IndexMarker:
    """Stands in for pandas.Index: only ever passed to ``_new_Index``."""


class _RangeIndexMarker:
    """Stands in for pandas.RangeIndex: only ever passed to ``_new_Index``."""


def _Array_values(value: Any) -> np.ndarray:
    if not isinstance(value, _Array) or value.array is None:
        raise pickle.UnpicklingError("expected an array")
    return value.array


def _index_values(index: Any) -> np.ndarray:
    if not isinstance(index, _Index) or not isinstance(index.spec, dict):
        raise pickle.UnpicklingError("expected an Index")
    if index.kind is _RangeIndexMarker:
        return np.arange(index.spec["start"], index.spec["stop"], index.spec["step"])
    return _Array_values(index.spec["data"])


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    if cls not in (_Frame, _BlockManager) or base is not object or state is not None:
        raise pickle.UnpicklingError(f"copy_reg._reconstructor of {cls!r} is not allowed")
    return cls.__new__(cls)


def _reconstruct(cls: Any, shape: Any, dtype_code: Any) -> _Array:
    if cls is not np.ndarray:
        raise pickle.UnpicklingError(f"numpy _reconstruct of {cls!r} is not allowed")
    return _Array()


def _new_index(cls: Any, spec: Any) -> _Index:
    if cls not in (_IndexMarker, _RangeIndexMarker):
        raise pickle.UnpicklingError(f"_new_Index of {cls!r} is not allowed")
    return _Index(cls, spec)


def _encode(text: Any, encoding: Any) -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is allowed only for latin1 text")
    return text.encode("latin1")


class RestrictedUnpickler(pickle.Unpickler):
    """Reads the old-pandas HAPT pickle: only the globals it names, each mapped to a stand-in
    that rebuilds plain numpy arrays. Any other global (``os.system``, ``builtins.eval``, even a
    real pandas class) stops the load with an UnpicklingError."""

    ALLOWED = {
        ("copy_reg", "_reconstructor"): _reconstructor,
        ("copyreg", "_reconstructor"): _reconstructor,
        ("__builtin__", "object"): object,
        ("builtins", "object"): object,
        ("__builtin__", "slice"): slice,
        ("builtins", "slice"): slice,
        ("_codecs", "encode"): _encode,
        ("numpy", "dtype"): _DType,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("pandas.core.frame", "DataFrame"): _Frame,
        ("pandas.core.internals.managers", "BlockManager"): _BlockManager,
        ("pandas.core.indexes.base", "_new_Index"): _new_index,
        ("pandas.core.indexes.base", "Index"): _IndexMarker,
        ("pandas.core.indexes.range", "RangeIndex"): _RangeIndexMarker,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            allowed = ", ".join(f"{m}.{n}" for m, n in sorted(self.ALLOWED))
            raise pickle.UnpicklingError(f"global '{module}.{name}' is forbidden in this pickle; only these are allowed: {allowed}") from None


def read_hapt_pickle(data: bytes) -> dict[int, list[dict[str, np.ndarray]]]:
    """The HAPT pickle's bytes -> user id -> recordings, each a dict column name -> array."""
    try:
        loaded = RestrictedUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise SeqlabError(f"The HAPT pickle was refused or is damaged: {err}. Delete the cached file to download it afresh.") from None
    shape_ok = isinstance(loaded, dict) and all(isinstance(k, int) and isinstance(v, list) for k, v in loaded.items())
    if not shape_ok or not all(isinstance(f, _Frame) for v in loaded.values() for f in v):
        raise SeqlabError("The HAPT pickle is not a dict of user id -> list of DataFrames. Delete the cached file to download it afresh.")
    try:
        return {user: [frame.columns() for frame in frames] for user, frames in loaded.items()}
    except pickle.UnpicklingError as err:
        raise SeqlabError(f"The HAPT pickle could not be read: {err}.") from None
