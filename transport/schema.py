"""Validated construction of dataclasses from plain data (YAML configs and message headers).

Every config and every wire message in this project is a dataclass. `from_dict` builds one from a
mapping of plain values (what YAML or JSON gives), and fails with a `SchemaError` that names the
offending key by its dotted path ("env.action.translation_scale_m") and, for unknown keys, suggests
the nearest valid one. Nothing here executes code from the data: only bools, numbers, strings,
lists, mappings and numpy arrays are accepted.

Supported field annotations: bool, int, float, str, `X | None`, `list[X]`, `tuple[X, ...]`,
`tuple[X, Y]`, `dict[str, X]`, `Literal[...]`, nested dataclasses, and `np.ndarray` (with optional
`field(metadata={"shape": (3,), "dtype": "float64"})`; `None` in a shape matches any length).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union

import numpy as np

T = TypeVar("T")


class SchemaError(ValueError):
    """Data does not fit a dataclass schema. `key` is the dotted path of the offending field."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


class RangeError(ValueError):
    """A dataclass field outside its allowed range, raised from `__post_init__`; `from_dict` reports
    it under the field's own dotted key ("robot_server.safety.max_step_m: must be in ...").

    Attributes:
        field: the field's name within its dataclass.
    """

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field} {message}")
        self.message = message


def check_range(
    name: str, value: float, low: float, high: float, *, low_open: bool = False, unit: str = ""
) -> None:
    """Raise RangeError unless `low <= value <= high` (`low < value` with `low_open`) and finite.

    The message names the range, e.g. "must be in (0, 1] s, got 5.0"."""
    ok = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
    if not ok:
        shown = f"{'(' if low_open else '['}{low:g}, {high:g}]{' ' + unit if unit else ''}"
        raise RangeError(name, f"must be in {shown}, got {value!r}")


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


_HINTS_CACHE: dict[type, dict[str, Any]] = {}


def field_types(cls: type) -> dict[str, Any]:
    """Resolved type hints of a dataclass (cached; annotations may be strings)."""
    hints = _HINTS_CACHE.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _HINTS_CACHE[cls] = hints
    return hints


def from_dict(cls: type[T], data: Any, where: str = "", *, allow_arrays: bool = False) -> T:
    """Build dataclass `cls` from `data`, validating every key and value.

    Args:
        cls: the dataclass type.
        data: a mapping of plain values.
        where: dotted path of `data` inside the enclosing document, used in error messages.
        allow_arrays: accept numpy arrays for `np.ndarray` fields (wire messages); configs give
            lists instead, which are converted.
    Raises:
        SchemaError: unknown key (with a suggestion), missing required key, or a wrong value.
    """
    if not isinstance(data, Mapping):
        raise SchemaError(where, f"expected a mapping for {cls.__name__}, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    moved: Mapping[str, str] = getattr(cls, "moved_keys", {})
    for key in data:
        if isinstance(key, str) and key in moved:
            raise SchemaError(_join(where, key), f"this key is now {moved[key]}: move the setting there")
        if not isinstance(key, str) or key not in fields:
            near = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean '{near[0]}'?" if near else f"; valid keys: {', '.join(fields)}"
            raise SchemaError(_join(where, str(key)), f"unknown key{hint}")
    hints = field_types(cls)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        path = _join(where, name)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise SchemaError(path, "required key is missing")
            continue
        kwargs[name] = _convert(hints[name], data[name], path, f.metadata, allow_arrays)
    try:
        return cls(**kwargs)
    except SchemaError:
        raise
    except RangeError as exc:
        raise SchemaError(_join(where, exc.field), exc.message) from exc
    except (TypeError, ValueError) as exc:
        raise SchemaError(where, str(exc)) from exc


def _convert(tp: Any, value: Any, path: str, meta: Mapping, allow_arrays: bool) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _convert(option, value, path, meta, allow_arrays)
            except SchemaError as exc:
                # A mapping given for a dataclass option, or an error below this path, means the
                # value had this option's shape: report its own error (naming the key), not a
                # list of every option's complaint.
                deeper = exc.key.startswith(path) and exc.key != path
                if deeper or (dataclasses.is_dataclass(option) and isinstance(value, Mapping)):
                    raise
                errors.append(str(exc))
        raise SchemaError(path, "; ".join(e.split(": ", 1)[-1] for e in errors))
    if origin is Literal:
        if value not in args:
            raise SchemaError(path, f"{value!r} is not one of {', '.join(repr(a) for a in args)}")
        return value
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, (bool, np.bool_)):
            raise SchemaError(path, f"expected true/false, got {value!r}")
        return bool(value)
    if tp is int:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise SchemaError(path, f"expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
            raise SchemaError(path, f"expected a number, got {value!r}")
        if not math.isfinite(float(value)):
            raise SchemaError(path, f"expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise SchemaError(path, f"expected a string, got {value!r}")
        return value
    if tp is np.ndarray:
        return _convert_array(value, path, meta, allow_arrays)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path, allow_arrays=allow_arrays)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise SchemaError(path, f"expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise SchemaError(path, f"expected {len(args)} values, got {len(value)}")
            return tuple(
                _convert(a, v, f"{path}[{i}]", {}, allow_arrays)
                for i, (a, v) in enumerate(zip(args, value, strict=True))
            )
        item = args[0] if args else Any
        items = [_convert(item, v, f"{path}[{i}]", {}, allow_arrays) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise SchemaError(path, f"expected a mapping, got {value!r}")
        vtype = args[1] if len(args) == 2 else Any
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise SchemaError(path, f"keys must be strings, got {k!r}")
            # Metadata of a dict-of-arrays field (dtype, shape) applies to each entry.
            out[k] = _convert(vtype, v, _join(path, k), meta if vtype is np.ndarray else {}, allow_arrays)
        return out
    raise SchemaError(path, f"unsupported field type {tp!r}")  # a bug in a schema, not in data


def _convert_array(value: Any, path: str, meta: Mapping, allow_arrays: bool) -> np.ndarray:
    if isinstance(value, np.ndarray):
        if not allow_arrays:
            raise SchemaError(path, "arrays are not accepted here")
        arr = value
    elif isinstance(value, (list, tuple)):
        try:
            arr = np.asarray(value, dtype=meta.get("dtype", "float64"))
        except (TypeError, ValueError) as exc:
            raise SchemaError(path, f"not a numeric array: {exc}") from exc
    else:
        raise SchemaError(path, f"expected an array, got {type(value).__name__}")
    check_array(arr, path, meta)
    return arr


def check_array(arr: np.ndarray, path: str, meta: Mapping) -> None:
    """Check an array against `{"shape": ..., "dtype": ...}` metadata and reject NaN/inf."""
    want_dtype = meta.get("dtype")
    if want_dtype is not None and arr.dtype != np.dtype(want_dtype):
        raise SchemaError(path, f"dtype {arr.dtype} where {np.dtype(want_dtype)} is expected")
    want_shape = meta.get("shape")
    if want_shape is not None:
        ok = len(want_shape) == arr.ndim and all(
            w is None or w == s for w, s in zip(want_shape, arr.shape, strict=True)
        )
        if not ok:
            shown = tuple("any" if w is None else w for w in want_shape)
            raise SchemaError(path, f"shape {arr.shape} where {shown} is expected")
    if arr.dtype.kind == "f" and arr.size and not np.isfinite(arr).all():
        raise SchemaError(path, "contains NaN or inf")


def to_dict(obj: Any, *, arrays: bool = False) -> Any:
    """Plain-data form of a dataclass (JSON/YAML-ready). Array fields become lists unless `arrays`."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name), arrays=arrays) for f in dataclasses.fields(obj)}
    if isinstance(obj, np.ndarray):
        return obj if arrays else obj.tolist()
    if isinstance(obj, (list, tuple)):
        return [to_dict(v, arrays=arrays) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_dict(v, arrays=arrays) for k, v in obj.items()}
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
