"""On-disk message files: round trip, atomic writes, corruption detection, crash leftovers."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
from link_support import make_chunk, make_stats

from hilrl.transport import chunkfile
from hilrl.transport.chunkfile import (
    FORMAT_VERSION,
    MAGIC,
    ChunkDirectory,
    ChunkFileError,
    read_header,
    read_message,
    write_message,
)
from hilrl.transport.codec import encode
from hilrl.transport.learner_messages import LEARNER_MESSAGES, TransitionChunk, Weights

pytestmark = pytest.mark.timeout(30)

CAMERAS = {"wrist": (128, 128, 3), "front": (128, 128, 3)}


def _assert_same_chunk(a: TransitionChunk, b: TransitionChunk) -> None:
    assert (a.actor_session, a.seq) == (b.actor_session, b.seq)
    for name in ("obs_state", "action", "reward", "terminated", "has_action", "episode_id", "step_index"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.obs_images.keys() == b.obs_images.keys()
    for cam in a.obs_images:
        np.testing.assert_array_equal(a.obs_images[cam], b.obs_images[cam])


def test_round_trip_with_images(tmp_path):
    chunk = make_chunk(3.0, cameras=CAMERAS, session="s", seq=7)
    path = tmp_path / "one.chunk"
    write_message(path, chunk, LEARNER_MESSAGES, sender="me", seq=7)
    envelope, back = read_message(path, LEARNER_MESSAGES)
    assert envelope.kind == "transition_chunk" and envelope.sender == "me"
    _assert_same_chunk(chunk, back)
    assert not back.obs_state.flags.writeable  # read-only views on the file's bytes, like wire messages
    assert back.obs_state.flags.aligned and back.episode_id.flags.aligned
    assert read_header(path)["body"] == {"actor_session": "s", "seq": 7, "robot_name": ""}
    raw = path.read_bytes()
    assert raw[:8] == MAGIC and struct.unpack_from("<I", raw, 8)[0] == FORMAT_VERSION


def test_write_is_atomic_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "w.chunk"
    write_message(path, Weights(1, {"a": np.ones(3, np.float32)}), LEARNER_MESSAGES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.chunk"]

    # A crash between writing the temp file and renaming it: the old file stays whole, the temp
    # file is what is left over.
    def crash(*_args, **_kwargs):
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(chunkfile.os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        write_message(path, Weights(2, {"a": np.zeros(3, np.float32)}), LEARNER_MESSAGES)
    monkeypatch.undo()
    _, msg = read_message(path, LEARNER_MESSAGES)
    assert msg.version == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.chunk"]  # the failed temp file was removed


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda raw: raw[: len(raw) // 2], ("truncated",)),
        (lambda raw: raw[:10], ("truncated",)),
        (lambda raw: b"", ("truncated",)),
        (lambda raw: b"GARBAGE!" + raw[8:], ("not a hilrl message file",)),
        (lambda raw: raw[:8] + struct.pack("<I", 99) + raw[12:], ("format version 99",)),
        (lambda raw: raw[:-3] + bytes(b ^ 0xFF for b in raw[-3:]), ("checksum",)),
        (lambda raw: raw + b"extra", ("trailing",)),
        (lambda raw: raw[:12] + struct.pack("<I", 10**6) + raw[16:], ("frames",)),
    ],
    ids=["half", "header_only", "empty", "bad_magic", "bad_version", "flipped_bytes", "trailing", "frame_count"],
)
def test_damaged_files_raise_an_error_naming_the_file(tmp_path, damage, words):
    path = tmp_path / "000000003.chunk"
    write_message(path, make_chunk(1.0, cameras={"wrist": (16, 16, 3)}), LEARNER_MESSAGES)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ChunkFileError) as info:
        read_message(path, LEARNER_MESSAGES)
    assert str(path) in str(info.value) and info.value.path == path
    for word in words:
        assert word in str(info.value)


def test_valid_file_with_a_payload_the_codec_refuses(tmp_path):
    frames = [bytes(f) for f in encode(make_chunk(), LEARNER_MESSAGES)]
    frames[0] = frames[0].replace(b'"transition_chunk"', b'"no_such_kind"')
    path = tmp_path / "x.chunk"
    chunkfile.write_frames(path, frames)
    with pytest.raises(ChunkFileError, match="unknown_kind"):
        read_message(path, LEARNER_MESSAGES)


def test_directory_numbers_files_lists_in_order_and_ignores_temp_files(tmp_path):
    directory = ChunkDirectory(tmp_path / "d")
    for i in range(12):
        directory.append(make_chunk(float(i), k=2), LEARNER_MESSAGES)
    directory.append(make_stats(5), LEARNER_MESSAGES)
    assert directory.path_for(42).name == "000000042.chunk"
    assert [p.name for p in directory.paths()][:3] == ["000000000.chunk", "000000001.chunk", "000000002.chunk"]
    # A crash mid-write leaves a temp file: ignored, and removed when the folder is opened again.
    leftover = directory.path / ".000000013.chunk.deadbeef.tmp"
    leftover.write_bytes(b"half a chunk")
    ChunkDirectory(tmp_path / "d")
    assert leftover.exists()  # the writer still holds the folder: it could be its write in progress
    directory.close()  # the writer is gone (a crashed process releases its lock too)
    reopened = ChunkDirectory(tmp_path / "d")
    assert not leftover.exists()
    assert len(reopened) == 13 and reopened.next_index == 13
    messages = [msg for _, msg in reopened.iter_messages(LEARNER_MESSAGES)]
    assert [float(m.reward[0]) for m in messages[:12]] == [float(i) for i in range(12)]
    assert messages[12].episode_id == 5


def test_readable_after_a_crash_up_to_the_last_complete_chunk(tmp_path):
    directory = ChunkDirectory(tmp_path)
    for i in range(3):
        directory.append(make_chunk(float(i)), LEARNER_MESSAGES)
    # What a crash can leave: a temp file; what disk damage can leave: a bad numbered file.
    (tmp_path / ".000000003.chunk.0123.tmp").write_bytes(b"\x00" * 100)
    directory.path_for(1).write_bytes(directory.path_for(1).read_bytes()[:50])
    directory.close()
    reopened = ChunkDirectory(tmp_path)
    assert not (tmp_path / ".000000003.chunk.0123.tmp").exists()
    with pytest.raises(ChunkFileError, match="000000001.chunk"):
        list(reopened.iter_messages(LEARNER_MESSAGES))
    good = [msg.reward[0] for _, msg in reopened.iter_messages(LEARNER_MESSAGES, skip_corrupt=True)]
    assert good == [0.0, 2.0]


def test_group_commit_writes_every_message(tmp_path):
    directory = ChunkDirectory(tmp_path)
    directory.append(make_chunk(-1.0), LEARNER_MESSAGES)
    batch = [encode(make_chunk(float(i), cameras={"c": (8, 8, 3)}, session="s", seq=i + 1), LEARNER_MESSAGES)
             for i in range(5)]
    paths = directory.append_frames(batch)
    assert [p.name for p in paths] == [f"00000000{i}.chunk" for i in range(1, 6)]
    assert [m.seq for _, m in directory.iter_messages(LEARNER_MESSAGES)] == [0, 1, 2, 3, 4, 5]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_put_orders_by_index_and_remove_and_quarantine(tmp_path):
    directory = ChunkDirectory(tmp_path)
    for index in (7, 3, 5):
        directory.put(index, make_chunk(float(index)), LEARNER_MESSAGES)
    assert directory.indices() == [3, 5, 7]
    directory.remove(5)
    assert directory.indices() == [3, 7] and not directory.path_for(5).exists()
    moved = directory.quarantine(3, "test")
    assert moved.exists() and directory.indices() == [7]
    assert ChunkDirectory(tmp_path).indices() == [7]  # the .corrupt file is not listed


def test_no_pickle_in_the_format(tmp_path):
    path = tmp_path / "c.chunk"
    write_message(path, make_chunk(cameras={"c": (4, 4, 3)}), LEARNER_MESSAGES)
    raw = path.read_bytes()
    assert b"\x80\x04" not in raw[:64] and b"pickle" not in raw  # no pickle protocol header
    assert os.path.getsize(path) == len(raw)
