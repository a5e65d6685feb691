"""RobotClient (lazy pirate REQ client) against real server processes: bounded failure when the
server is absent, transparent recovery across a server restart, and exactly-once execution of a
retried request."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
from robot_test_support import free_port, start_server

from hilrl.robot_server.client import RobotClient
from hilrl.robot_server.interface import RobotServerError, RobotUnreachableError
from hilrl.transport.robot_messages import ImpedanceParams

pytestmark = pytest.mark.timeout(120)


def test_unreachable_server_fails_in_bounded_time_naming_the_address():
    address = f"tcp://127.0.0.1:{free_port()}"
    with RobotClient(address, timeout_s=0.2, retries=3) as client:
        started = time.monotonic()
        with pytest.raises(RobotUnreachableError) as info:
            client.state()
        elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 2.0
    message = str(info.value)
    assert address in message and "3 tries" in message and "0.2 s" in message
    assert "hilrl robot-server" in message


@pytest.mark.timeout(20)
def test_a_request_that_cannot_be_sent_fails_in_bounded_time(monkeypatch):
    """A REQ socket with no usable connection blocks in send (seen with a CurveZMQ handshake the
    server refused). ZMQ_IMMEDIATE makes that state certain here: nothing listens, so no pipe
    exists to send on. Each try must end at its timeout, not hang."""
    import zmq

    from hilrl.robot_server import client as client_module

    def connect_immediate(socket, address, curve, config_key):
        socket.setsockopt(zmq.IMMEDIATE, 1)
        socket.connect(address)

    monkeypatch.setattr(client_module, "secure_connect", connect_immediate)
    with RobotClient(f"tcp://127.0.0.1:{free_port()}", timeout_s=0.2, retries=2) as client:
        started = time.monotonic()
        with pytest.raises(RobotUnreachableError, match="2 tries"):
            client.state()
    assert time.monotonic() - started < 5.0


def test_client_methods_round_trip_and_errors_raise(lockstep_server):
    with RobotClient(lockstep_server.endpoint, timeout_s=5.0) as client:
        info = client.info()
        assert info.backend == "sim" and info.cameras == ["front", "wrist"]
        home = client.go_home(position_noise_m=0.01, rotation_noise_rad=0.05, seed=1)
        assert home.status == "ok"
        assert np.linalg.norm(home.tcp_position_m - info.home_position_m) < 0.03
        state = client.set_pose_target(home.tcp_position_m + [0.0, 0.02, 0.0], home.tcp_quaternion_wxyz)
        np.testing.assert_allclose(state.target_position_m, home.tcp_position_m + [0.0, 0.02, 0.0], atol=1e-12)
        assert client.set_gripper(0.5) is None
        assert client.set_impedance(ImpedanceParams(translational_stiffness_n_per_m=1000.0)) is None
        after = client.advance(5)
        assert after.robot_time_s == pytest.approx(state.robot_time_s + 0.5)
        assert after.tcp_position_m[1] > home.tcp_position_m[1] + 0.005  # the arm moved towards the target
        assert client.clear_errors().status == "ok"
        with pytest.raises(RobotServerError) as err:
            client.render(["ceiling"])
        assert err.value.code == "bad_field" and "ceiling" in str(err.value)
        with pytest.raises(RobotServerError) as err:
            client.set_pose_target(home.tcp_position_m, np.zeros(4))
        assert err.value.code == "bad_field"
        client.set_impedance(ImpedanceParams())


def test_client_recovers_when_the_server_is_killed_and_restarted():
    port = free_port()
    server = start_server(port=port)
    client = RobotClient(server.endpoint, timeout_s=1.0, retries=10)
    replacement = None
    try:
        assert client.advance(3).robot_time_s == pytest.approx(0.3)
        server.stop(signal.SIGKILL)
        # Restarted between calls: the next call just works (on the new server's fresh clock).
        replacement = start_server(port=port)
        assert client.state().robot_time_s == pytest.approx(0.0)
        # Killed and restarted *during* a call: the call waits it out and succeeds.
        replacement.stop(signal.SIGKILL)
        restarted: list = []
        threading.Timer(0.5, lambda: restarted.append(start_server(port=port))).start()
        assert client.advance(1).robot_time_s == pytest.approx(0.1)
        replacement = restarted[0]
    finally:
        client.close()
        server.stop()
        if replacement is not None:
            replacement.stop()


def test_retried_advance_is_executed_once(servers):
    server = servers()
    client = RobotClient(server.endpoint, timeout_s=0.3, retries=10)
    try:
        start = client.state().robot_time_s
        # Freeze the server so the client's first tries time out and it resends the same seq
        # on new sockets; then let it run and work through every queued copy.
        os.kill(server.proc.pid, signal.SIGSTOP)
        result: list = []
        worker = threading.Thread(target=lambda: result.append(client.advance(2)))
        worker.start()
        time.sleep(1.0)  # about three tries
        os.kill(server.proc.pid, signal.SIGCONT)
        worker.join(10)
        assert result, "advance did not complete"
        assert result[0].robot_time_s == pytest.approx(start + 0.2)
        assert client.state().robot_time_s == pytest.approx(start + 0.2)
        # The server saw the copies queued while it was frozen and replayed its cached reply.
        assert "replaying the cached reply" in server.log_tail()
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
        client.close()
