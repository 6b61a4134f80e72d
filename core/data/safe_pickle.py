"""Unpicklers for CIFAR's batches that build plain data and checked integer arrays, nothing else."""
from __future__ import annotations

import math
import pickle

import numpy as np

from .base import DataError


class PlainUnpickler(pickle.Unpickler):
    """Lists, dicts, strings and numbers only: any class or function in the stream is refused."""

    def find_class(self, module, name):
        raise DataError(f"refused to unpickle {module}.{name}: the file holds more than plain data")


class ArrayUnpickler(PlainUnpickler):
    """Plain data and numpy arrays of plain integer dtypes (what CIFAR's batches hold). The stream
    never reaches numpy's own constructors: a dtype or array it spells is taken down as plain data
    by the stand-ins below, checked, and only then made into an array from its raw bytes (numpy's
    dtype unpickling trusts its state: a forged one makes an object array of the file's pointers)."""
    allowed = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # protocol 5
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self.allowed:
            return super().find_class(module, name)
        return {"_reconstruct": _PickledArray, "_frombuffer": _shaped, "ndarray": _NDARRAY,
                "dtype": _PickledDtype, "encode": _latin1_bytes}[name]

    def load(self):
        return _arrays_made(super().load())


_NDARRAY = object()  # what the stream names as numpy.ndarray: only ever compared with


class _PickledDtype:
    """`numpy.dtype(name, align, copy)` then its state, as plain data: an integer kind and a byte order."""
    KINDS = {"u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8"}

    def __init__(self, name, align=False, copy=True):
        if name not in self.KINDS:
            raise DataError(f"refused a numpy dtype {str(name)[:20]!r}: only plain integers are read")
        self.name, self.order = name, "|"

    def __setstate__(self, state):
        # (version, byte order, subarray, names, fields, element size, alignment, flags): plain means no
        # subarray, no fields and no flags (a flag says it holds Python objects)
        if not (isinstance(state, tuple) and len(state) == 8 and state[1] in ("<", ">", "|", "=")
                and state[2:5] == (None, None, None) and state[7] == 0):
            raise DataError("refused a numpy dtype whose state is more than a plain integer kind")
        self.order = state[1]

    def numpy(self) -> np.dtype:
        kind = np.dtype(self.name)
        return kind.newbyteorder(self.order) if self.order in "<>" else kind


def _raw(data) -> bytes:
    if isinstance(data, str):  # a Python 2 pickle's byte string, read as latin-1
        return data.encode("latin1")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise DataError("refused an array whose data is not bytes")


def _shaped(data, dtype, shape, order: str = "C") -> np.ndarray:
    """The checked array (protocol 5 spells `_frombuffer(data, dtype, shape, order)` directly)."""
    if not isinstance(dtype, _PickledDtype):
        raise DataError("refused an array without a plain dtype")
    if not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)):
        raise DataError("refused an array with a malformed shape")
    raw, kind = _raw(data), dtype.numpy()
    if math.prod(shape) * kind.itemsize != len(raw):
        raise DataError("refused an array whose shape does not match its bytes")
    return np.frombuffer(raw, dtype=kind).reshape(shape, order="F" if order == "F" else "C").copy()


class _PickledArray:
    """`_reconstruct(ndarray, (0,), b'b')` then the state (version, shape, dtype, fortran order, bytes)."""

    def __init__(self, cls, shape, typecode):
        if cls is not _NDARRAY:
            raise DataError("refused an array of a class other than numpy.ndarray")
        self.array = None

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) in (4, 5)):
            raise DataError("refused an array with a malformed state")
        shape, dtype, fortran, data = state[-4:]
        self.array = _shaped(data, dtype, shape, "F" if fortran else "C")


def _arrays_made(value, made: dict | None = None):
    """The unpickled structure with every array stand-in replaced by its checked array. A pickle
    may share one list many times over (its memo): each is rebuilt once (`made`, by identity), or
    800 bytes of nested sharing unfold into gigabytes."""
    made = {} if made is None else made
    if id(value) in made:
        return made[id(value)]
    if isinstance(value, _PickledArray):
        if value.array is None:
            raise DataError("refused an array without its data")
        result = value.array
    elif isinstance(value, _PickledDtype):
        raise DataError("refused a bare numpy dtype")
    elif isinstance(value, dict):
        result = {key: _arrays_made(item, made) for key, item in value.items()}
    elif isinstance(value, (list, tuple)):
        result = type(value)(_arrays_made(item, made) for item in value)
    else:
        return value
    made[id(value)] = result
    return result


LATIN1 = ("latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1")


def _latin1_bytes(text, encoding="latin1"):
    """`_codecs.encode` as a Python 2 pickle uses it for byte strings: latin-1 only (another codec,
    punycode say, takes time quadratic in the text)."""
    if not isinstance(text, str) or str(encoding).lower() not in LATIN1:
        raise DataError("refused a text encoding other than latin-1")
    return text.encode("latin1")
