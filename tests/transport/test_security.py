"""CurveZMQ: `hilrl keys`, authorized vs unauthorized clients, and the loopback-or-keys rule."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
import zmq
from link_support import REPO, fast_config, make_chunk, make_hello, repo_env, wait_until

from hilrl.transport.link import ActorLink, LearnerLink
from hilrl.transport.link_config import CurveConfig
from hilrl.transport.security import (
    CurveKeyError,
    InsecureAddressError,
    generate_keys,
    is_loopback,
    require_curve_or_loopback,
    secure_bind,
    secure_connect,
)

pytestmark = pytest.mark.timeout(60)


def _hilrl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hilrl.tools.cli", *args], cwd=REPO, env=repo_env(),
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict:
    """Keys made by `hilrl keys --out DIR --clients 2`, and the printed snippet, parsed."""
    out = tmp_path_factory.mktemp("keys")
    result = _hilrl("keys", "--out", str(out), "--clients", "2")
    assert result.returncode == 0, result.stderr
    snippet = yaml.safe_load(result.stdout)
    return {"dir": out, "curve": snippet["link"]["curve"]}


def _server_curve(keys: dict) -> CurveConfig:
    c = keys["curve"]
    return CurveConfig(server_public_key=c["server_public_key"], server_secret_key=c["server_secret_key"],
                       authorized_clients_dir=c["authorized_clients_dir"])


def _client_curve(keys: dict, public: str | Path | None = None, secret: str | Path | None = None) -> CurveConfig:
    c = keys["curve"]
    return CurveConfig(server_public_key=c["server_public_key"], client_public_key=str(public or c["client_public_key"]),
                       client_secret_key=str(secret or c["client_secret_key"]))


def test_hilrl_keys_writes_the_layout_and_refuses_to_overwrite(keys):
    out = keys["dir"]
    assert (out / "learner.key").is_file() and (out / "learner.key_secret").is_file()
    assert sorted(p.name for p in (out / "authorized_clients").iterdir()) == ["actor-1.key", "actor-2.key"]
    assert (out / "clients" / "actor-2.key_secret").stat().st_mode & 0o077 == 0  # secret: owner only
    assert "secret-key" not in (out / "authorized_clients" / "actor-1.key").read_text()
    again = _hilrl("keys", "--out", str(out))
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr and "Traceback" not in again.stderr


def test_authorized_client_talks_to_a_curve_learner(keys, tmp_path):
    learner = LearnerLink(fast_config(curve=_server_curve(keys)), make_hello(), tmp_path / "store", "secure")
    learner.start()
    try:
        actor = ActorLink(fast_config(learner.endpoint, curve=_client_curve(keys)), make_hello("good"), tmp_path / "s")
        actor.start()
        try:
            actor.send_chunk(make_chunk(5.0))
            assert wait_until(lambda: actor.unacked == 0, 10)
            assert actor.learner_alive and learner.actors_alive() == ["good"]
            assert [float(c.reward[0]) for c in learner.poll_chunks()] == [5.0]
        finally:
            actor.close(flush_timeout_s=0)
    finally:
        learner.close()


def test_unauthorized_or_plain_clients_get_nothing(keys, tmp_path):
    intruder = generate_keys(tmp_path / "intruder", ["intruder"])["intruder"]
    learner = LearnerLink(fast_config(curve=_server_curve(keys)), make_hello(), tmp_path / "store", "secure")
    learner.start()
    links = [
        ActorLink(fast_config(learner.endpoint, curve=_client_curve(keys, *intruder)), make_hello("bad"), tmp_path / "s1"),
        ActorLink(fast_config(learner.endpoint), make_hello("plain"), tmp_path / "s2"),  # no keys at all
    ]
    try:
        for link in links:
            link.start()
            link.send_chunk(make_chunk())
        time.sleep(1.5)  # several hello periods: it would have been welcomed by now
        for link in links:
            assert not link.learner_alive and link.learner_session is None and link.unacked == 1
        assert learner.actors_alive() == [] and learner.stored_chunks == 0
    finally:
        for link in links:
            link.close(flush_timeout_s=0)
        learner.close()


class _NoBind:
    """Stands in for a socket: the address check must fire before anything touches it."""

    context = None

    def __getattr__(self, name):
        raise AssertionError(f"socket.{name} used before the address check")


@pytest.mark.parametrize("address", ["tcp://0.0.0.0:5556", "tcp://*:5556", "tcp://192.168.1.20:5556",
                                     "tcp://eth0:5556", "tcp://learner.lab:5556", "tcp://[::]:5556"])
def test_non_loopback_bind_without_keys_is_refused_before_binding(address, tmp_path):
    with pytest.raises(InsecureAddressError) as info:
        secure_bind(_NoBind(), address, None)
    for word in (address, "loopback", "CurveZMQ", "hilrl keys", "link.curve"):
        assert word in str(info.value)
    with pytest.raises(InsecureAddressError, match="connect to"):
        secure_connect(_NoBind(), address, None)
    learner = LearnerLink(fast_config(address), make_hello(), tmp_path / "store", "x")
    try:
        with pytest.raises(InsecureAddressError, match="hilrl keys"):
            learner.start()
    finally:
        learner.close()


def test_loopback_addresses():
    for address in ("tcp://127.0.0.1:5556", "tcp://127.3.2.1:1", "tcp://localhost:5556", "tcp://[::1]:5556",
                    "ipc:///tmp/x.sock", "inproc://learner", "tcp://127.0.0.1:*"):
        assert is_loopback(address), address
        require_curve_or_loopback(address, None)
    for address in ("tcp://0.0.0.0:1", "tcp://10.0.0.1:1", "tcp://lo:1", "pgm://eth0;239.1.1.1:5555", "garbage"):
        assert not is_loopback(address), address


def test_missing_key_files_are_named(keys, tmp_path):
    context = zmq.Context()
    sock = context.socket(zmq.ROUTER)
    try:
        broken = CurveConfig(server_public_key=str(tmp_path / "nope.key"), server_secret_key=str(tmp_path / "nope.key_secret"),
                             authorized_clients_dir=str(tmp_path))
        with pytest.raises(CurveKeyError, match="nope.key_secret"):
            secure_bind(sock, "tcp://127.0.0.1:0", broken)
        no_dir = CurveConfig(**{**vars(_server_curve(keys)), "authorized_clients_dir": None})
        with pytest.raises(CurveKeyError, match="authorized_clients_dir"):
            secure_bind(sock, "tcp://127.0.0.1:0", no_dir)
        with pytest.raises(CurveKeyError, match="client_secret_key"):
            secure_connect(sock, "tcp://10.0.0.1:5556", CurveConfig(server_public_key=keys["curve"]["server_public_key"]))
    finally:
        sock.close(linger=0)
        context.term()


def test_robot_server_with_curve_keys_serves_only_authorized_clients(keys, tmp_path):
    from hilrl.robot_server.client import RobotClient
    from hilrl.robot_server.config import ServerConfig
    from hilrl.robot_server.interface import RobotUnreachableError
    from hilrl.robot_server.server import serve

    config = ServerConfig(address="tcp://127.0.0.1:0", curve=_server_curve(keys))
    ready: list[str] = []
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(config, "reach", stop), kwargs={"on_ready": ready.append}, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: bool(ready), 60), "robot server did not start"
        with RobotClient(ready[0], timeout_s=5.0, curve=_client_curve(keys)) as client:
            assert client.info().task == "reach"
        intruder = generate_keys(tmp_path / "intruder", ["intruder"])["intruder"]
        with RobotClient(ready[0], timeout_s=0.3, retries=2, curve=_client_curve(keys, *intruder)) as client:
            with pytest.raises(RobotUnreachableError):
                client.info()
    finally:
        stop.set()
        thread.join(30)
    with pytest.raises(InsecureAddressError):
        RobotClient("tcp://10.1.2.3:5555")
