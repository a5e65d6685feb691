"""On-disk format: one codec message per file, written atomically. Used for every file we write
(demonstrations, the learner's received chunks, the actor's spool, checkpoints).

Layout of a file (all integers little-endian):

    offset 0     8 bytes   magic b"HILRLMSG"
    offset 8     u32       format version (FORMAT_VERSION)
    offset 12    u32       n: number of codec frames (>= 1; frame 0 is the codec's JSON header)
    offset 16    n x u64   length of each frame in bytes
    then         u32       CRC-32 of all frame bytes, in order (padding excluded)
    then                   the n frames; each starts at the next multiple of 64 bytes (zero
                           padding in between), so arrays read back are aligned for any dtype

The frames are exactly what `transport.codec.encode` produces (a JSON header, then raw arrays), so
reading a file never runs code from it: no pickle anywhere. A reader checks magic, version, frame
count and sizes against `Limits` before reading the payload, the file size against the declared
lengths (truncation), and the CRC (garbage), then decodes with the codec's checks.

Atomicity: `write_message` writes a temp file in the same folder, fsyncs it, renames it over the
final name (`os.replace`, atomic on POSIX) and fsyncs the folder, so after a crash a file either
exists complete or not at all; what a crash can leave is a temp file (".NAME.XXXX.tmp"), which
`ChunkDirectory` ignores and removes when it opens the folder.

`ChunkDirectory` is an append-only folder of numbered files (000000042.chunk); it is "readable
after a crash up to the last complete chunk". One writer per folder, enforced with an advisory
lock (`flock` on FOLDER/.lock) that a writer holds from its first write (or `lock()`) until
`close()`; temp files are only removed when nobody holds it, so a reader opening the folder never
deletes a live writer's temp file.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import struct
import uuid
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hilrl.transport.codec import (
    STORED_VERSIONS,
    Envelope,
    Limits,
    ProtocolError,
    Registry,
    decode,
    encode,
)
from hilrl.transport.learner_messages import LEARNER_MESSAGES

log = logging.getLogger(__name__)

MAGIC = b"HILRLMSG"
FORMAT_VERSION = 1
_FIXED = struct.Struct("<8sII")  # magic, format version, frame count
_CRC = struct.Struct("<I")
ALIGN = 64  # frame start alignment in bytes (a cache line; covers every dtype's alignment)

STORE_LIMITS = Limits(max_header_bytes=4 * 1024 * 1024, max_frame_bytes=1024 * 1024 * 1024, max_frames=65536)
"""Default bounds for files we wrote ourselves: generous (checkpoints hold many large tensors), but
a corrupt length field still cannot make a reader allocate without bound (the payload size must
also match the file size)."""

CHUNK_SUFFIX = ".chunk"
_INDEX_DIGITS = 9
_CHUNK_NAME = re.compile(r"^(\d+)\.chunk$")
_TEMP_SUFFIX = ".tmp"
_LOCK_NAME = ".lock"

Frame = bytes | bytearray | memoryview


class DirectoryBusyError(RuntimeError):
    """Another writer (process or object) holds the folder's lock."""


class ChunkFileError(Exception):
    """A file is not a complete, valid message file. `path` names it; the message says what is wrong."""

    def __init__(self, path: str | Path, message: str):
        self.path = Path(path)
        super().__init__(f"{path}: {message}")


# ---------------------------------------------------------------------------------- single files


def _frame_bytes(frame: Any) -> memoryview:
    if hasattr(frame, "buffer"):  # zmq.Frame
        return frame.buffer
    return memoryview(frame).cast("B")


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _prefix(frames: Sequence[memoryview]) -> bytes:
    """Fixed header, frame table and CRC, padded to the first frame's aligned offset."""
    crc = 0
    for f in frames:
        crc = zlib.crc32(f, crc)
    head = b"".join(
        (
            _FIXED.pack(MAGIC, FORMAT_VERSION, len(frames)),
            struct.pack(f"<{len(frames)}Q", *(len(f) for f in frames)),
            _CRC.pack(crc),
        )
    )
    return head + bytes(_align(len(head)) - len(head))


def _frame_offsets(start: int, lengths: Sequence[int]) -> tuple[list[int], int]:
    """(offset of each frame, file size) for frames laid out from `start`."""
    offsets, at = [], start
    for n in lengths:
        offsets.append(at)
        at = _align(at + n)
    return offsets, (offsets[-1] + lengths[-1]) if lengths else start


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{_TEMP_SUFFIX}")


def _write_temp(path: Path, frames: Sequence[Any], fsync: bool) -> Path:
    """Write frames to a fresh temp file next to `path`; returns the temp path (fsynced if asked)."""
    views = [_frame_bytes(f) for f in frames]
    if not views:
        raise ValueError("a message file needs at least one frame")
    tmp = _temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_prefix(views))
            for i, v in enumerate(views):
                f.write(v)
                if i + 1 < len(views):
                    f.write(bytes(_align(len(v)) - len(v)))
            if fsync:
                f.flush()
                os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def fsync_dir(path: str | Path) -> None:
    """Make renames and unlinks in folder `path` durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_frames(path: str | Path, frames: Sequence[Any], *, fsync: bool = True) -> None:
    """Atomically write already-encoded codec frames as a message file at `path`.

    Args:
        path: final file name (its folder must exist).
        frames: codec frames (bytes, memoryviews or zmq.Frames), header first.
        fsync: fsync the file before the rename and the folder after it (crash-safe). Without it
            the write is still atomic for other readers but may be lost (never half-read: the
            size and CRC checks catch it) after a power cut.
    """
    path = Path(path)
    tmp = _write_temp(path, frames, fsync)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_dir(path.parent)


def write_json_atomic(path: str | Path, data: Any, *, fsync: bool = False) -> None:
    """Write `data` as indented JSON to `path` so readers see the old file or the new one, never
    half of one (summaries, progress, evaluation results). `fsync` as for write_frames."""
    path = Path(path)
    tmp = _temp_path(path)
    try:
        with open(tmp, "w") as f:
            f.write(json.dumps(data, indent=2) + "\n")
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_dir(path.parent)


def write_message(
    path: str | Path, msg: Any, registry: Registry, *, sender: str = "", seq: int = 0, fsync: bool = True
) -> None:
    """Atomically write one registered message dataclass to `path` (see `write_frames`)."""
    write_frames(path, encode(msg, registry, sender=sender, seq=seq), fsync=fsync)


def _read_layout(f: Any, path: Path, size: int, limits: Limits) -> tuple[list[int], list[int], int, int]:
    """(frame lengths, frame offsets, crc, payload offset) from an open file; checks magic,
    version and sizes. Leaves the file positioned at the end of the frame table."""
    fixed = f.read(_FIXED.size)
    if len(fixed) < _FIXED.size:
        raise ChunkFileError(path, f"truncated: {size} bytes, too short for the {_FIXED.size}-byte file header")
    magic, version, count = _FIXED.unpack(fixed)
    if magic != MAGIC:
        raise ChunkFileError(path, f"not a hilrl message file (magic {magic!r}, expected {MAGIC!r})")
    if version != FORMAT_VERSION:
        raise ChunkFileError(
            path, f"file format version {version} is not supported; this reader reads version {FORMAT_VERSION}"
        )
    if count < 1 or count > limits.max_frames:
        raise ChunkFileError(path, f"declares {count} frames (allowed 1..{limits.max_frames})")
    table = f.read(8 * count + _CRC.size)
    if len(table) < 8 * count + _CRC.size:
        raise ChunkFileError(path, f"truncated: {size} bytes end inside the frame table of {count} frames")
    lengths = list(struct.unpack_from(f"<{count}Q", table))
    (crc,) = _CRC.unpack_from(table, 8 * count)
    if lengths[0] > limits.max_header_bytes:
        raise ChunkFileError(path, f"header frame of {lengths[0]} bytes exceeds the limit {limits.max_header_bytes}")
    for i, n in enumerate(lengths[1:], start=1):
        if n > limits.max_frame_bytes:
            raise ChunkFileError(path, f"frame {i} of {n} bytes exceeds the limit {limits.max_frame_bytes}")
    offset = _align(_FIXED.size + len(table))
    offsets, expected = _frame_offsets(offset, lengths)
    if size < expected:
        raise ChunkFileError(path, f"truncated: {size} bytes, the frame table needs {expected}")
    if size > expected:
        raise ChunkFileError(path, f"{size - expected} unexpected trailing bytes after the last frame")
    return lengths, offsets, crc, offset


def read_frames(path: str | Path, limits: Limits = STORE_LIMITS) -> list[memoryview]:
    """The codec frames stored in `path` (read-only, 64-byte aligned views), after the size and
    CRC checks.

    Raises:
        ChunkFileError: missing, truncated, garbage, wrong format version or over `limits`.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            lengths, offsets, crc, offset = _read_layout(f, path, size, limits)
            f.seek(offset)
            # numpy's allocator aligns its buffers (>= 16 bytes), so frames at 64-byte offsets
            # give aligned arrays; bytearray makes no such promise.
            payload = np.empty(size - offset, dtype=np.uint8)
            if f.readinto(memoryview(payload)) != len(payload):
                raise ChunkFileError(path, "file shrank while being read")
    except OSError as exc:
        raise ChunkFileError(path, f"cannot read: {exc.strerror or exc}") from None
    view = memoryview(payload).toreadonly()
    frames = [view[o - offset : o - offset + n] for o, n in zip(offsets, lengths, strict=True)]
    crc_found = 0
    for frame in frames:
        crc_found = zlib.crc32(frame, crc_found)
    if crc_found != crc:
        raise ChunkFileError(path, "checksum mismatch: the file is corrupted")
    return frames


def read_message(path: str | Path, registry: Registry, limits: Limits = STORE_LIMITS) -> tuple[Envelope, Any]:
    """(envelope, message) stored in `path`. Arrays are read-only views on the file's bytes.

    Raises:
        ChunkFileError: naming the file, for truncation, garbage, a failed checksum, an unknown
            format version, or a payload the codec refuses (with the codec's reason).
    """
    frames = read_frames(path, limits)
    try:
        envelope, msg = decode(frames, registry, limits, versions=STORED_VERSIONS)
    except ProtocolError as exc:
        raise ChunkFileError(path, f"stored message does not decode ({exc.code}): {exc}") from None
    return envelope, msg


def read_header(path: str | Path, limits: Limits = STORE_LIMITS) -> dict[str, Any]:
    """The codec JSON header of a message file (kind, sender, seq, body: non-array fields), reading
    only the file's start. Cheap; checks layout and sizes but not the CRC of the payload.

    Raises:
        ChunkFileError: truncated, garbage or unreadable.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            lengths, _, _, offset = _read_layout(f, path, size, limits)
            f.seek(offset)
            raw = f.read(lengths[0])
    except OSError as exc:
        raise ChunkFileError(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ChunkFileError(path, "header frame is not valid JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("body", {}), dict):
        raise ChunkFileError(path, "header frame is not a codec header")
    return header


# ---------------------------------------------------------------------------------- folders


class ChunkDirectory:
    """Append-only folder of numbered message files: 000000000.chunk, 000000001.chunk, ...

    Opening the folder creates it if needed and removes temp files a crash left behind (unless
    a writer holds the folder's lock: then they are its writes in progress). Indices are listed in
    numeric order, as of opening plus this object's own writes; `append` uses the next index after
    the largest present, `put` writes a chosen index (the actor's spool orders its files that way).

    Not thread-safe, and one writer per folder: the first write (or `lock()`) takes the folder's
    lock, held until `close()`; a second writer gets DirectoryBusyError.

    Args:
        path: the folder.
        limits: bounds applied when reading files back.
    """

    def __init__(self, path: str | Path, limits: Limits = STORE_LIMITS):
        self.path = Path(path)
        self.limits = limits
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = None
        fd = self._try_lock()
        if fd is not None:
            try:
                self._remove_temp_files()
            finally:
                os.close(fd)  # only a writer keeps the lock
        self._indices = sorted(
            int(m.group(1)) for m in (_CHUNK_NAME.match(e.name) for e in os.scandir(self.path)) if m
        )
        self._present = set(self._indices)

    # -- locking

    def _try_lock(self) -> int | None:
        fd = os.open(self.path / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # BlockingIOError: held by someone else
            os.close(fd)
            return None
        return fd

    def lock(self) -> None:
        """Become the folder's one writer (idempotent).

        Raises:
            DirectoryBusyError: another process or object writes here.
        """
        if self._lock_fd is not None:
            return
        fd = self._try_lock()
        if fd is None:
            raise DirectoryBusyError(
                f"{self.path} is being written by another process or link (its {_LOCK_NAME} is locked); "
                "give each actor its own spool folder and each learner its own store"
            )
        self._lock_fd = fd

    def close(self) -> None:
        """Release the writer lock (reading stays possible)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def _remove_temp_files(self) -> None:
        removed = 0
        for entry in os.scandir(self.path):
            if entry.name.startswith(".") and entry.name.endswith(_TEMP_SUFFIX):
                # An interrupted write: never renamed, so never acknowledged or counted.
                try:
                    os.unlink(entry.path)
                    removed += 1
                except FileNotFoundError:
                    pass
        if removed:
            log.info("%s: removed %d temp file(s) left by an interrupted write", self.path, removed)

    # -- naming

    def path_for(self, index: int) -> Path:
        """File name of `index` (zero-padded to 9 digits)."""
        if index < 0:
            raise ValueError(f"chunk index must be >= 0, got {index}")
        return self.path / f"{index:0{_INDEX_DIGITS}d}{CHUNK_SUFFIX}"

    def indices(self) -> list[int]:
        """Indices present, ascending."""
        return list(self._indices)

    def paths(self) -> list[Path]:
        """Files present, in index order."""
        return [self.path_for(i) for i in self._indices]

    def __len__(self) -> int:
        return len(self._indices)

    def __contains__(self, index: int) -> bool:
        return index in self._present

    @property
    def next_index(self) -> int:
        """The index `append` will use."""
        return self._indices[-1] + 1 if self._indices else 0

    def _record(self, index: int) -> None:
        if index in self._present:
            return
        self._present.add(index)
        if not self._indices or index > self._indices[-1]:
            self._indices.append(index)
        else:
            self._indices.append(index)
            self._indices.sort()

    # -- writing

    def append(
        self, msg: Any, registry: Registry = LEARNER_MESSAGES, *, sender: str = "", seq: int = 0, fsync: bool = True
    ) -> Path:
        """Write `msg` atomically as the next numbered file; returns its path."""
        return self.put(self.next_index, msg, registry, sender=sender, seq=seq, fsync=fsync)

    def put(
        self,
        index: int,
        msg: Any,
        registry: Registry = LEARNER_MESSAGES,
        *,
        sender: str = "",
        seq: int = 0,
        fsync: bool = True,
    ) -> Path:
        """Write `msg` atomically as file number `index` (replacing any file of that number)."""
        self.lock()
        path = self.path_for(index)
        write_message(path, msg, registry, sender=sender, seq=seq, fsync=fsync)
        self._record(index)
        return path

    def append_frames(self, messages: Sequence[Sequence[Any]], *, fsync: bool = True) -> list[Path]:
        """Group commit: write several already-encoded messages as the next numbered files.

        All temp files are written first, then fsynced, renamed, and the folder fsynced once, so
        one batch costs about one disk flush instead of one per file. When this returns, every
        file is durable (with `fsync`); on an exception, none of them is counted.

        Args:
            messages: codec frames of each message, header first.
        Returns:
            the paths, in the order given.
        """
        first = self.next_index
        return self.put_frames([(first + i, frames) for i, frames in enumerate(messages)], fsync=fsync)

    def put_many(
        self, items: Sequence[tuple[int, Any, str, int]], registry: Registry = LEARNER_MESSAGES, *, fsync: bool = True
    ) -> list[Path]:
        """Group commit of messages under given file numbers: (index, message, sender, seq) each
        (what `put` does for one, at about one disk flush for the batch)."""
        return self.put_frames(
            [(index, encode(msg, registry, sender=sender, seq=seq)) for index, msg, sender, seq in items], fsync=fsync
        )

    def put_frames(self, items: Sequence[tuple[int, Sequence[Any]]], *, fsync: bool = True) -> list[Path]:
        """Group commit of already-encoded messages as the given file numbers (index, frames).

        All temp files are written first, then fsynced, renamed, and the folder fsynced once, so
        one batch costs about one disk flush instead of one per file. When this returns, every
        file is durable (with `fsync`); on an exception, none of them is counted.
        """
        if not items:
            return []
        self.lock()
        finals = [self.path_for(index) for index, _ in items]
        messages = [frames for _, frames in items]
        temps: list[Path] = []
        try:
            for final, frames in zip(finals, messages, strict=True):
                # Data of all files goes to the page cache first; the fsyncs below then flush it
                # together (on ext4 the first fsync's journal commit carries the rest).
                temps.append(_write_temp(final, frames, fsync=False))
            if fsync:
                for tmp in temps:
                    fd = os.open(tmp, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
            for tmp, final in zip(temps, finals, strict=True):
                os.replace(tmp, final)
        except BaseException:
            for tmp in temps:
                tmp.unlink(missing_ok=True)
            raise
        if fsync:
            fsync_dir(self.path)
        for index, _ in items:
            self._record(index)
        return finals

    def remove(self, index: int) -> None:
        """Delete file `index` (no folder fsync: a file that reappears after a crash is harmless
        wherever we remove files, since its message is deduplicated downstream)."""
        self.lock()
        self.path_for(index).unlink(missing_ok=True)
        if index in self._present:
            self._present.discard(index)
            self._indices.remove(index)

    def quarantine(self, index: int, reason: str) -> Path:
        """Rename a bad file out of the listing (NAME.corrupt) so it is kept for inspection but
        never read again; returns the new path."""
        self.lock()
        src = self.path_for(index)
        dst = src.with_name(src.name + ".corrupt")
        log.error("%s: %s; moved aside to %s", src, reason, dst.name)
        try:
            os.replace(src, dst)
        except FileNotFoundError:
            pass
        self._present.discard(index)
        if index in self._indices:
            self._indices.remove(index)
        return dst

    # -- reading

    def read(self, index: int, registry: Registry = LEARNER_MESSAGES) -> tuple[Envelope, Any]:
        """(envelope, message) of file `index`. Raises ChunkFileError."""
        return read_message(self.path_for(index), registry, self.limits)

    def read_header(self, index: int) -> dict[str, Any]:
        """Codec header of file `index` (cheap; see `read_header`). Raises ChunkFileError."""
        return read_header(self.path_for(index), self.limits)

    def iter_messages(
        self, registry: Registry = LEARNER_MESSAGES, *, skip_corrupt: bool = False, indices: Sequence[int] | None = None
    ) -> Iterator[tuple[Envelope, Any]]:
        """(envelope, message) of every file, in index order.

        Args:
            registry: message kinds the files may hold.
            skip_corrupt: log and skip a bad file instead of raising ChunkFileError.
            indices: only these files (default: those present when iteration starts).
        """
        for index in list(self._indices if indices is None else indices):
            try:
                yield self.read(index, registry)
            except ChunkFileError as exc:
                if not skip_corrupt:
                    raise
                log.error("skipping %s", exc)
