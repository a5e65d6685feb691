"""The robot server process on real sockets: bad input gets an error reply and the server keeps
serving; replies echo the request's seq; resends are answered from the cache; the CLI refuses bad
configuration cleanly; SIGTERM stops the server cleanly."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import zmq
from robot_test_support import REPO, RawClient, assert_mentions, bad_requests, repo_env

from hilrl.robot_server.server import REQUEST_LIMITS
from hilrl.transport.codec import decode, encode
from hilrl.transport.robot_messages import (
    ROBOT_MESSAGES,
    Ack,
    Advance,
    ErrorReply,
    GetInfo,
    GetState,
    Render,
    RobotState,
    ServerInfo,
)

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("bad", bad_requests(REQUEST_LIMITS.max_frame_bytes), ids=lambda b: b.name)
def test_bad_request_gets_error_reply_then_server_still_serves(lockstep_server, bad):
    with RawClient(lockstep_server.endpoint) as raw:
        raw.send(bad.frames)
        frames = raw.recv(timeout_s=10)
        assert frames is not None, f"no reply to {bad.name}\n{lockstep_server.log_tail()}"
        envelope, reply = decode(frames, ROBOT_MESSAGES)
        assert isinstance(reply, ErrorReply), reply
        assert reply.code == bad.code, reply
        assert_mentions(reply.message, bad.mentions)
        _, state = raw.request(GetState(), seq=8)
        assert isinstance(state, RobotState) and state.status == "ok"
    assert lockstep_server.proc.poll() is None


def test_error_reply_echoes_seq_when_header_is_readable(lockstep_server):
    bad = next(b for b in bad_requests() if b.name == "wrong_shape")
    with RawClient(lockstep_server.endpoint) as raw:
        raw.send(bad.frames)
        envelope, reply = decode(raw.recv(), ROBOT_MESSAGES)
    assert isinstance(reply, ErrorReply) and envelope.seq == 7


def test_reply_envelope_carries_server_time_and_seq(lockstep_server):
    with RawClient(lockstep_server.endpoint) as raw:
        before = time.time()
        envelope, info = raw.request(GetInfo(), seq=1234)
        after = time.time()
    assert isinstance(info, ServerInfo) and info.backend == "sim" and info.task == "reach"
    assert info.clock == "lockstep" and info.control_period_s == pytest.approx(0.1)
    assert envelope.seq == 1234 and envelope.kind == "server_info"
    assert before - 1.0 <= envelope.time_s <= after + 1.0
    assert envelope.sender.startswith("robot_server")


def test_envelope_without_delimiter_is_dropped_and_server_survives(lockstep_server):
    frames = [bytes(f) for f in encode(GetState(), ROBOT_MESSAGES, sender="dealer", seq=1)]
    with RawClient(lockstep_server.endpoint, zmq.DEALER) as dealer:
        dealer.send(frames)  # no empty delimiter frame
        assert dealer.recv(timeout_s=0.5) is None
        dealer.send([b"", *frames])  # a DEALER framing like REQ is served
        reply = dealer.recv(timeout_s=10)
    assert reply is not None and reply[0] == b""
    _, state = decode(reply[1:], ROBOT_MESSAGES)
    assert isinstance(state, RobotState)


def test_resend_of_same_seq_is_not_executed_twice(lockstep_server):
    sender = "resend-test"
    with RawClient(lockstep_server.endpoint) as raw:
        _, start = raw.request(GetState(), sender=sender, seq=1)
    frames = encode(Advance(periods=2), ROBOT_MESSAGES, sender=sender, seq=2)
    replies = []
    for _ in range(3):  # as a lazy-pirate client does: a new socket per try, same seq
        with RawClient(lockstep_server.endpoint) as raw:
            raw.send(frames)
            replies.append(decode(raw.recv(timeout_s=10), ROBOT_MESSAGES)[1])
    times = [r.robot_time_s for r in replies]
    assert times[0] == pytest.approx(start.robot_time_s + 0.2)
    assert times == [times[0]] * 3
    with RawClient(lockstep_server.endpoint) as raw:
        _, after = raw.request(GetState(), sender=sender, seq=3)
        assert after.robot_time_s == pytest.approx(times[0])
        # A new seq from the same sender is executed.
        _, advanced = raw.request(Advance(periods=1), sender=sender, seq=4)
    assert advanced.robot_time_s == pytest.approx(times[0] + 0.1)


def test_render_unknown_camera_names_it_and_the_valid_ones(lockstep_server):
    with RawClient(lockstep_server.endpoint) as raw:
        _, reply = raw.request(Render(["front", "ceiling"]))
    assert isinstance(reply, ErrorReply) and reply.code == "bad_field"
    assert_mentions(reply.message, ("ceiling", "front", "wrist"))


def test_advance_is_refused_on_the_realtime_clock(servers):
    server = servers(clock="realtime")
    with RawClient(server.endpoint) as raw:
        _, reply = raw.request(Advance(1))
        _, info = raw.request(GetInfo(), seq=2)
    assert isinstance(reply, ErrorReply) and reply.code == "unsupported"
    assert info.clock == "realtime"


def test_sigterm_stops_the_server_cleanly(servers):
    server = servers()
    assert server.stop() == 0
    assert "Traceback" not in server.log_tail()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hilrl.tools.cli", "robot-server", *args],
        cwd=REPO, env=repo_env(), capture_output=True, text=True, timeout=60,
    )


def test_cli_config_error_names_the_key_without_traceback(tmp_path):
    config = tmp_path / "task.yaml"
    config.write_text("robot_server:\n  clock: lockstep\n  safety:\n    max_stepm: 0.1\n")
    result = _cli("--task", "reach", "--port", "0", "--config", str(config))
    assert result.returncode == 2
    assert "robot_server.safety.max_stepm" in result.stderr and "max_step_m" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_refuses_non_loopback_address():
    result = _cli("--task", "reach", "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    assert_mentions(result.stderr, ("0.0.0.0", "loopback", "CurveZMQ", "hilrl keys"))
    assert "Traceback" not in result.stderr


def test_cli_unknown_task_is_a_clean_error():
    result = _cli("--task", "juggle", "--port", "0")
    assert result.returncode == 2 and "juggle" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_file_values_apply_and_flags_override(servers, tmp_path):
    config = tmp_path / "task.yaml"
    config.write_text(
        "robot_server:\n  clock: realtime\n  control_rate_hz: 20\n"
        "  safety:\n    workspace_max_m: [0.7, 0.3, 0.4]\n"
    )
    server = servers(clock="lockstep", extra_args=["--config", str(config)])
    with RawClient(server.endpoint) as raw:
        _, info = raw.request(GetInfo())
    assert info.clock == "lockstep"  # the flag wins over the file
    assert info.control_period_s == pytest.approx(0.05)
    np.testing.assert_allclose(info.workspace_max_m, [0.7, 0.3, 0.4])


def test_render_over_the_wire(lockstep_server):
    with RawClient(lockstep_server.endpoint) as raw:
        _, images = raw.request(Render(["wrist", "front"]), timeout_s=30)
    assert not isinstance(images, ErrorReply), images
    assert images.cameras == ["wrist", "front"]
    assert images.pixels.shape == (2, 128, 128, 3) and images.pixels.dtype == np.uint8
    assert images.pixels.std() > 0  # a scene, not a blank frame


def test_a_reply_kind_sent_as_a_request_is_refused(lockstep_server):
    with RawClient(lockstep_server.endpoint) as raw:
        _, reply = raw.request(Ack())
    assert isinstance(reply, ErrorReply) and reply.code == "unknown_kind"
    assert_mentions(reply.message, ("Ack", "SetPoseTarget"))


def test_task_comes_from_the_config_file(servers):
    server = servers(task="", extra_args=["--config", str(REPO / "configs" / "sim_pick_cube.yaml")])
    with RawClient(server.endpoint) as raw:
        _, info = raw.request(GetInfo())
    assert info.task == "pick_cube"


def test_reply_cache_is_bounded_by_senders_and_bytes():
    from hilrl.robot_server.server import _ReplyCache

    cache = _ReplyCache(max_senders=3, max_bytes=100)
    for i in range(5):
        cache.put(f"s{i}", 1, [b"x" * 10])
    assert cache.get("s0", 1) is None and cache.get("s4", 1) == [b"x" * 10]
    cache.put("big", 1, [b"x" * 200])  # over the byte bound alone: kept, everything older evicted
    assert cache.get("big", 1) is not None and cache.get("s4", 1) is None
    cache.put("big", 2, [b"y"])
    assert cache.get("big", 1) is None and cache.get("big", 2) == [b"y"]
