"""Wire codec: one JSON header frame followed by raw array frames. No pickle, ever.

A message is a dataclass registered under a `kind` string. On the wire it is a ZeroMQ multipart
message:

    frame 0   JSON header: {"v": PROTOCOL_VERSION, "kind": ..., "sender": ..., "seq": ...,
              "time_s": ..., "body": {non-array fields}, "arrays": [[field, dtype, shape], ...]}
    frame 1.. one raw little-endian buffer per array field, in the order of "arrays"

Decoding trusts nothing: sizes, dtypes, shapes, field names and types, NaN/inf and the protocol
version are all checked, and any failure raises `ProtocolError` with a `code` a program can switch
on and a message a person can act on. Decoding never runs code from the message.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hilrl.transport.schema import SchemaError, field_types, from_dict

PROTOCOL_VERSION = 4  # 3: Hello carries the learning contract and the robot name; 4: learner progress
# carries env_steps_ahead (the global update-to-data throttle), chunks and stats the robot name
# Versions whose stored messages (demos, the learner's store, the actor's spool) still decode: each
# bump so far only added fields with defaults. The wire speaks PROTOCOL_VERSION alone.
STORED_VERSIONS = (3, 4)

# Only plain numeric dtypes may cross the wire; object or structured dtypes could smuggle
# arbitrary content and are refused.
ALLOWED_DTYPES = frozenset(
    np.dtype(d).str
    for d in ("bool", "uint8", "int8", "uint16", "int16", "int32", "uint32", "int64", "float32", "float64")
)


class ProtocolError(Exception):
    """A message could not be decoded or is not acceptable.

    Attributes:
        code: short machine-readable reason: "garbled", "bad_version", "unknown_kind",
            "bad_frame", "too_large", "bad_field".
    """

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class Limits:
    """Upper bounds on what a receiver accepts, in bytes and frames."""

    max_header_bytes: int = 64 * 1024
    max_frame_bytes: int = 16 * 1024 * 1024
    max_frames: int = 64


@dataclass(frozen=True)
class Envelope:
    """Routing and bookkeeping fields every message carries.

    Attributes:
        kind: message kind (registry key).
        sender: id of the sending process session (free text, e.g. a uuid).
        seq: sender's sequence number for this message (replies echo the request's seq).
        time_s: sender's wall clock (time.time()) when the message was encoded, in seconds.
    """

    kind: str
    sender: str = ""
    seq: int = 0
    time_s: float = 0.0


class Registry:
    """Maps kind strings to message dataclasses, and back. Built once, then read-only."""

    def __init__(self, kinds: Mapping[str, type]):
        self._by_kind = dict(kinds)
        self._by_type = {cls: kind for kind, cls in self._by_kind.items()}
        if len(self._by_type) != len(self._by_kind):
            raise ValueError("one dataclass registered under two kinds")

    def kind_of(self, msg: Any) -> str:
        try:
            return self._by_type[type(msg)]
        except KeyError:
            raise TypeError(f"{type(msg).__name__} is not a registered message type") from None

    def type_of(self, kind: str) -> type:
        try:
            return self._by_kind[kind]
        except KeyError:
            raise ProtocolError(
                "unknown_kind", f"unknown message kind {kind!r}; known: {', '.join(sorted(self._by_kind))}"
            ) from None

    def merged(self, other: Registry) -> Registry:
        return Registry({**self._by_kind, **other._by_kind})


def _array_fields(cls: type) -> list[dataclasses.Field]:
    hints = field_types(cls)
    return [f for f in dataclasses.fields(cls) if hints[f.name] is np.ndarray or _optional_array(hints[f.name])]


def _optional_array(tp: Any) -> bool:
    """`np.ndarray | None`."""
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and np.ndarray in typing.get_args(tp)


def _array_dict_fields(cls: type) -> list[dataclasses.Field]:
    """Fields annotated `dict[str, np.ndarray]`: each entry travels as its own frame 'field/key'."""
    hints = field_types(cls)
    return [f for f in dataclasses.fields(cls) if getattr(hints[f.name], "__args__", None) == (str, np.ndarray)]


def _array_frame(arr: Any) -> tuple[str, list[int], memoryview]:
    arr = np.asarray(arr, order="C")  # not ascontiguousarray: it turns 0-d arrays into shape (1,)
    if arr.dtype.str not in ALLOWED_DTYPES:
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return arr.dtype.str, list(arr.shape), memoryview(arr).cast("B")


def encode(msg: Any, registry: Registry, *, sender: str = "", seq: int = 0) -> list[bytes | memoryview]:
    """Encode a registered message dataclass as multipart frames (header first)."""
    cls = type(msg)
    kind = registry.kind_of(msg)
    array_names = {f.name for f in _array_fields(cls)}
    dict_names = {f.name for f in _array_dict_fields(cls)}
    body: dict[str, Any] = {}
    arrays: list[list[Any]] = []
    frames: list[bytes | memoryview] = []
    for f in dataclasses.fields(cls):
        value = getattr(msg, f.name)
        if f.name in array_names:
            if value is None:
                body[f.name] = None
                continue
            dtype, shape, frame = _array_frame(value)
            arrays.append([f.name, dtype, shape])
            frames.append(frame)
        elif f.name in dict_names:
            for key in value:
                if "/" in key:
                    raise ValueError(f"{kind}.{f.name}: key {key!r} may not contain '/'")
                dtype, shape, frame = _array_frame(value[key])
                arrays.append([f"{f.name}/{key}", dtype, shape])
                frames.append(frame)
        else:
            body[f.name] = _plain(value)
    header = {
        "v": PROTOCOL_VERSION,
        "kind": kind,
        "sender": sender,
        "seq": seq,
        "time_s": time.time(),
        "body": body,
        "arrays": arrays,
    }
    return [json.dumps(header, allow_nan=False, separators=(",", ":")).encode(), *frames]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"cannot encode non-finite number {value}")
    return value


def decode(
    frames: Sequence[bytes | memoryview | Any],
    registry: Registry,
    limits: Limits = Limits(),
    versions: Sequence[int] = (PROTOCOL_VERSION,),
) -> tuple[Envelope, Any]:
    """Decode multipart frames into (envelope, message). Raises ProtocolError on any defect.

    Array fields come back as read-only numpy views on the received buffers. `versions`: the
    protocol versions accepted (the wire: this one; stored files: STORED_VERSIONS).
    """
    if not frames:
        raise ProtocolError("garbled", "empty message")
    if len(frames) > limits.max_frames:
        raise ProtocolError("too_large", f"{len(frames)} frames, limit {limits.max_frames}")
    raw = [_buffer(f) for f in frames]
    if len(raw[0]) > limits.max_header_bytes:
        raise ProtocolError("too_large", f"header is {len(raw[0])} bytes, limit {limits.max_header_bytes}")
    for i, buf in enumerate(raw[1:], start=1):
        if len(buf) > limits.max_frame_bytes:
            raise ProtocolError("too_large", f"frame {i} is {len(buf)} bytes, limit {limits.max_frame_bytes}")
    try:
        header = json.loads(bytes(raw[0]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and integers past Python's digit limit;
        # RecursionError comes from deeply nested arrays, which fit easily in the header limit.
        raise ProtocolError("garbled", f"header frame is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("garbled", "header frame is not a JSON object")
    version = header.get("v")
    if version not in versions or isinstance(version, bool):
        raise ProtocolError(
            "bad_version", f"protocol version {version!r} not supported; this side speaks {PROTOCOL_VERSION}"
        )
    kind = header.get("kind")
    if not isinstance(kind, str):
        raise ProtocolError("garbled", "header has no 'kind' string")
    cls = registry.type_of(kind)
    try:
        envelope = Envelope(
            kind=kind,
            sender=_typed(header.get("sender", ""), str, "sender"),
            seq=_typed(header.get("seq", 0), int, "seq"),
            time_s=float(_typed(header.get("time_s", 0.0), (int, float), "time_s")),
        )
    except TypeError as exc:
        raise ProtocolError("garbled", str(exc)) from None
    if not math.isfinite(envelope.time_s):
        raise ProtocolError("garbled", "header field 'time_s' is not a finite number")
    body = header.get("body", {})
    specs = header.get("arrays", [])
    if not isinstance(body, dict) or not isinstance(specs, list):
        raise ProtocolError("garbled", "header 'body' must be an object and 'arrays' a list")
    if len(specs) != len(raw) - 1:
        raise ProtocolError("bad_frame", f"header lists {len(specs)} arrays but {len(raw) - 1} frames follow")
    array_meta = {f.name: f.metadata for f in _array_fields(cls)}
    dict_names = {f.name for f in _array_dict_fields(cls)}
    values = dict(body)
    for name in dict_names:
        if name in values:
            raise ProtocolError("bad_field", f"{kind}: '{name}' must travel as array frames")
        values[name] = {}
    for i, spec in enumerate(specs):
        name, arr = _decode_array(spec, raw[i + 1], i + 1, kind)
        field_name, slash, key = name.partition("/")
        if slash and field_name in dict_names and key:
            if key in values[field_name]:
                raise ProtocolError("bad_field", f"{kind}: '{name}' given twice")
            values[field_name][key] = arr
            continue
        if name not in array_meta:
            raise ProtocolError("bad_field", f"{kind}: '{name}' is not an array field")
        if name in values:
            raise ProtocolError("bad_field", f"{kind}: '{name}' given twice")
        values[name] = arr
    try:
        msg = from_dict(cls, values, kind, allow_arrays=True)
    except SchemaError as exc:
        raise ProtocolError("bad_field", str(exc)) from None
    return envelope, msg


def _typed(value: Any, types_: Any, name: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, types_):
        raise TypeError(f"header field '{name}' has the wrong type")
    return value


def _buffer(frame: Any) -> memoryview:
    if hasattr(frame, "buffer"):  # zmq.Frame
        return frame.buffer
    return memoryview(frame)


def _decode_array(spec: Any, buf: memoryview, index: int, kind: str) -> tuple[str, np.ndarray]:
    if (
        not isinstance(spec, list)
        or len(spec) != 3
        or not isinstance(spec[0], str)
        or not isinstance(spec[1], str)
        or not isinstance(spec[2], list)
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in spec[2])
    ):
        raise ProtocolError("garbled", f"{kind}: array spec {index} must be [name, dtype, [dims...]]")
    name, dtype_str, shape = spec
    if dtype_str not in ALLOWED_DTYPES:
        raise ProtocolError("bad_frame", f"{kind}: array '{name}' has dtype {dtype_str!r}, which is not allowed")
    dtype = np.dtype(dtype_str)
    expected = dtype.itemsize * math.prod(shape)
    if expected != len(buf):
        raise ProtocolError(
            "bad_frame",
            f"{kind}: array '{name}' declares shape {tuple(shape)} {dtype} ({expected} bytes) "
            f"but its frame has {len(buf)} bytes",
        )
    try:
        return name, np.frombuffer(buf, dtype=dtype).reshape(shape)
    except ValueError as exc:  # e.g. a zero-size shape with dimensions numpy cannot represent
        raise ProtocolError("bad_frame", f"{kind}: array '{name}' has an unusable shape {tuple(shape)}: {exc}") from None
