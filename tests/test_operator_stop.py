"""Operator stop: the keyboard's stop key and the SpaceMouse's stop gesture make the intervention
wrapper send the robot `stop` before any motion, end the episode and refuse to go on; the robot
refuses motion until clear errors; the actor exits 1 with how to resume; `hilrl robot-stop` and
`hilrl clear-errors` against a real robot server process (and an address nobody answers)."""

from __future__ import annotations

import dataclasses
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

_HARDWARE_TESTS = Path(__file__).resolve().parent / "hardware"
if str(_HARDWARE_TESTS) not in sys.path:
    sys.path.insert(0, str(_HARDWARE_TESTS))

from fake_spacemouse import FakeClock, FakeSpaceMouse  # noqa: E402

from hilrl.actor.config import InterventionConfig  # noqa: E402
from hilrl.actor.experts import make_expert  # noqa: E402
from hilrl.actor.interventions import InterventionWrapper, OperatorStopped, ScriptedOperator  # noqa: E402
from hilrl.actor.make import make_sim_env  # noqa: E402
from hilrl.actor.operators import KeyboardOperator, SpaceMouseOperator  # noqa: E402
from hilrl.hardware.keyboard import KeyboardConfig, QueuedKeySource  # noqa: E402
from hilrl.hardware.spacemouse import ButtonBinding, SpaceMouseConfig  # noqa: E402
from hilrl.robot_server.client import RobotClient  # noqa: E402
from hilrl.robot_server.config import ServerConfig  # noqa: E402
from hilrl.robot_server.inprocess import InProcessRobot  # noqa: E402
from hilrl.robot_server.interface import RobotServerError  # noqa: E402
from hilrl.robot_server.process import start_server_process  # noqa: E402
from hilrl.tools.run import free_loopback_port  # noqa: E402
from hilrl.transport.action import ActionConfig  # noqa: E402
from hilrl.transport.run_dir import RunDir  # noqa: E402
from hilrl.transport.schema import SchemaError, from_dict  # noqa: E402

XYZ_GRIPPER = ActionConfig(translation_scale_m=0.02, rotation_scale_rad=0.0, gripper=True)


def _assert_stopped_then_cleared(robot, who: str) -> None:
    """The robot latched the operator stop, refuses motion until clear errors, then moves again."""
    state = robot.state()
    assert any(e.startswith("operator_stop") and who in e for e in state.errors), state.errors
    with pytest.raises(RobotServerError) as refused:
        robot.set_pose_target(state.tcp_position_m, state.tcp_quaternion_wxyz)
    assert refused.value.code == "controller_error" and "operator_stop" in str(refused.value)
    assert robot.clear_errors().errors == []
    robot.set_pose_target(state.tcp_position_m, state.tcp_quaternion_wxyz)  # accepted again


def _assert_refuses_to_go_on(wrapped: InterventionWrapper, action: np.ndarray) -> None:
    with pytest.raises(OperatorStopped, match="operator stop"):
        wrapped.step(action)
    with pytest.raises(OperatorStopped, match="operator stop"):
        wrapped.reset(seed=1)  # a sim reset would clear the latch: never behind the operator's back


# ---------------------------------------------------------------------------- keyboard


@pytest.mark.timeout(60)
def test_keyboard_stop_key_stops_the_arm_before_any_motion_and_ends_the_episode(caplog):
    env = make_sim_env("reach")
    keys = QueuedKeySource()
    wrapped = InterventionWrapper(env, KeyboardOperator(KeyboardConfig(), env.config.action, source=keys))
    try:
        obs, _ = wrapped.reset(seed=0)
        policy = np.full(3, 0.8, np.float32)
        obs, *_ = wrapped.step(policy)
        before = env.robot_state
        keys.feed("w ")  # a motion key and the stop (space bar) in the same step: the stop wins
        with caplog.at_level("ERROR", logger="hilrl.actor.interventions"):
            obs2, reward, terminated, truncated, info = wrapped.step(policy)
        assert truncated and not terminated and reward == 0.0
        assert info["operator_stop"] and "keyboard" in info["operator_stop"]
        assert any("operator_stop" in e for e in info["robot_errors"])
        assert not info["intervened"] and not info["succeeded"]
        np.testing.assert_array_equal(info["action_taken"], np.zeros(3))
        np.testing.assert_array_equal(obs2["state"], obs["state"])
        # No motion command went out: the lockstep sim did not advance, the arm did not move.
        assert env.robot_state.robot_time_s == before.robot_time_s
        np.testing.assert_allclose(env.robot_state.tcp_position_m, before.tcp_position_m, atol=1e-9)
        errors = [r.getMessage() for r in caplog.records if r.name == "hilrl.actor.interventions"]
        assert len(errors) == 1 and "arm is held" in errors[0] and caplog.records[-1].levelname == "ERROR"
        _assert_refuses_to_go_on(wrapped, policy)
        _assert_stopped_then_cleared(env.robot, "operator keyboard stop gesture")
    finally:
        wrapped.close()


@pytest.mark.timeout(60)
def test_keyboard_stop_typed_during_a_step_or_a_reset_still_stops(monkeypatch):
    env = make_sim_env("reach")
    keys = QueuedKeySource()
    wrapped = InterventionWrapper(env, KeyboardOperator(KeyboardConfig(), env.config.action, source=keys))
    try:
        wrapped.reset(seed=0)
        step = env.step

        def step_while_typing(action):
            keys.feed(" ")  # typed while the step runs: seen when the label is polled
            return step(action)

        monkeypatch.setattr(env, "step", step_while_typing)
        t0 = env.robot_state.robot_time_s
        _, _, terminated, truncated, info = wrapped.step(np.zeros(3, np.float32))
        assert truncated and not terminated and info["operator_stop"]
        assert env.robot_state.robot_time_s > t0  # that step's motion had already run
        assert any("operator_stop" in e for e in env.robot.state().errors)
        _assert_refuses_to_go_on(wrapped, np.zeros(3, np.float32))
        assert env.robot.clear_errors().errors == []
    finally:
        wrapped.close()

    env = make_sim_env("reach")
    keys = QueuedKeySource()
    wrapped = InterventionWrapper(env, KeyboardOperator(KeyboardConfig(), env.config.action, source=keys))
    try:
        keys.feed("n ")  # typed before the reset: the label belongs to no episode, the stop counts
        with pytest.raises(OperatorStopped):
            wrapped.reset(seed=0)
        assert any("operator_stop" in e for e in env.robot.state().errors)
    finally:
        wrapped.close()


@pytest.mark.timeout(30)
def test_keyboard_stop_binding_defaults_to_space_and_is_configurable():
    config = KeyboardConfig()
    assert config.stop == " " and config.bindings[" "] == "stop"
    assert set(config.bindings) == set("wsadrfconyh ")  # no clash with the other defaults
    section = from_dict(InterventionConfig, {"device": "keyboard", "keyboard": {"stop": "Space"}}, "actor.intervention")
    assert section.keyboard.stop == " "
    assert KeyboardConfig(stop="X").bindings["x"] == "stop"
    with pytest.raises(SchemaError, match=r"actor\.intervention\.keyboard.*stop"):
        from_dict(InterventionConfig, {"keyboard": {"stop": "w"}}, "actor.intervention")  # x_plus's key
    keys = QueuedKeySource()
    op = KeyboardOperator(KeyboardConfig(stop="x"), XYZ_GRIPPER, source=keys)
    keys.feed("x")
    assert op.stop_requested() and not op.stop_requested()  # true once
    keys.feed(" ")  # not bound any more
    assert not op.stop_requested()


@pytest.mark.timeout(60)
def test_devices_without_a_stop_never_stop_the_arm():
    env = make_sim_env("reach")
    config = InterventionConfig(device="scripted")
    wrapped = InterventionWrapper(env, ScriptedOperator(config, make_expert("reach", env.config.action)))
    try:
        wrapped.reset(seed=0)
        for _ in range(3):
            info = wrapped.step(np.zeros(3, np.float32))[4]
            assert info["operator_stop"] is None
        assert wrapped.stopped is None and env.robot.state().errors == []
    finally:
        wrapped.close()


# ---------------------------------------------------------------------------- SpaceMouse


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mouse(clock, monkeypatch) -> FakeSpaceMouse:
    fake = FakeSpaceMouse(clock)
    monkeypatch.setitem(sys.modules, "pyspacemouse", fake.module)
    return fake


def _mouse_step(wrapped: InterventionWrapper, clock: FakeClock, action: np.ndarray):
    wrapped.device.reader.poll()
    out = wrapped.step(action)
    clock.advance(0.1)
    return out


@pytest.mark.timeout(60)
def test_spacemouse_left_button_held_stops_the_arm_and_never_closes_the_gripper(mouse, clock):
    env = make_sim_env("pick_cube")
    op = SpaceMouseOperator(SpaceMouseConfig(long_press_s=0.95), env.config.action, clock=clock, start_thread=False)
    wrapped = InterventionWrapper(env, op)
    try:
        wrapped.reset(seed=0)
        policy = np.zeros(4, np.float32)
        mouse.press(0)
        for _ in range(10):  # held 0.0 .. 0.9 s: not yet
            _, _, terminated, truncated, info = _mouse_step(wrapped, clock, policy)
            assert not (terminated or truncated) and info["operator_stop"] is None
            assert info["action_taken"][-1] == 0.0  # a held button is not a click: no gripper command
        t0 = env.robot_state.robot_time_s
        _, reward, terminated, truncated, info = _mouse_step(wrapped, clock, policy)  # 1.0 s
        assert truncated and not terminated and reward == 0.0
        assert "spacemouse" in info["operator_stop"]
        assert env.robot_state.robot_time_s == t0  # stopped before that step's motion
        mouse.release()  # letting go fires nothing else: no close gesture, no second stop
        op.reader.poll()
        assert not op.stop_requested() and op.label() is None
        assert op.intervene(env.robot_state, policy)[-1] == 0.0
        _assert_refuses_to_go_on(wrapped, policy)
        _assert_stopped_then_cleared(env.robot, "operator spacemouse stop gesture")
    finally:
        wrapped.close()


@pytest.mark.timeout(30)
def test_spacemouse_stop_held_through_a_reset_still_fires_but_clicks_do_not(mouse, clock):
    op = SpaceMouseOperator(SpaceMouseConfig(), XYZ_GRIPPER, clock=clock, start_thread=False)
    try:
        mouse.click(0)  # a click during the reset: belongs to no episode, and is no stop
        op.reader.poll()
        op.reset()
        assert not op.stop_requested() and op.intervene(None, np.zeros(4, np.float32)) is None
        mouse.press(0)
        op.reader.poll()
        clock.advance(0.5)
        op.reset()  # the arm goes home while the operator holds the button
        clock.advance(0.6)
        op.reader.poll()
        assert op.stop_requested()  # held 1.1 s across the reset
        assert not op.stop_requested()
    finally:
        op.close()


@pytest.mark.timeout(30)
def test_spacemouse_stop_gesture_is_configurable_and_checked_for_clashes():
    config = SpaceMouseConfig()
    assert config.stop == ButtonBinding([0], long=True) and config.gestures["stop"] == config.stop
    with pytest.raises(ValueError, match="stop uses the same gesture as failure"):
        SpaceMouseConfig(failure=ButtonBinding([0], long=True))
    with pytest.raises(ValueError, match="success_hold_button 0 is also in the stop gesture"):
        SpaceMouseConfig(close_gripper=None, success=None, failure=None, success_hold_button=0)
    assert "stop" not in SpaceMouseConfig(stop=None).gestures
    section = from_dict(InterventionConfig, {"spacemouse": {"stop": {"buttons": [1], "long": True}}}, "actor.intervention")
    assert section.spacemouse.stop == ButtonBinding([1], long=True)


# ---------------------------------------------------------------------------- the actor


class _KeysAt:
    """A key source typing `keys` at its `at`-th read (the operator reads a few times a step)."""

    def __init__(self, at: int, keys: str = " "):
        self.reads, self.at, self.keys = 0, at, keys

    def read_keys(self) -> str:
        self.reads += 1
        return self.keys if self.reads == self.at else ""

    def close(self) -> None:
        pass


def _run_actor(monkeypatch, tmp_path: Path, overrides: list[str], at: int) -> int:
    """`hilrl actor` (its main, in this process) with a keyboard operator whose stop key is
    typed at the `at`-th key read."""
    from hilrl.actor import loop

    sources: list[_KeysAt] = []

    def keyboard(config, task, env, seed=0):
        sources.append(_KeysAt(at))
        return KeyboardOperator(KeyboardConfig(), env.unwrapped.config.action, source=sources[-1])

    monkeypatch.setattr(loop, "make_intervention_device", keyboard)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return loop.main([
            "--config", "sim_reach", "--run-dir", str(tmp_path / "run"), "--dashboard", "off",
            "--max-env-steps", "200", "--eval-episodes", "2",
            "env.max_episode_steps=20", "learner.updates_per_env_step=0", "learner.sac.hidden_dims=[16, 16]",
            "actor.learner_wait_s=1",  # no learner listens: do not wait the default minute for one
            f"link.address=tcp://127.0.0.1:{free_loopback_port()}", *overrides,
        ], prog="hilrl actor")
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


@pytest.mark.timeout(120)
def test_actor_stops_cleanly_with_exit_1_after_an_operator_stop(monkeypatch, tmp_path, capsys):
    # A reset reads keys twice, a step four times (stop check, action, label, stop check): read
    # 7 is the second step's first, so the stop comes before that step's motion command.
    assert _run_actor(monkeypatch, tmp_path, [], at=7) == 1
    err = capsys.readouterr().err
    assert "hilrl actor: error: operator stop (keyboard): the arm is held" in err
    assert "Traceback" not in err and "evaluation" not in err
    # The stopped episode was recorded and handed to the link (spilled: no learner listens).
    assert any(RunDir(tmp_path / "run").spool.iterdir()), "the stopped episode was not kept"


# ---------------------------------------------------------------------------- the commands


@pytest.fixture(scope="module")
def server():
    """A lockstep sim robot server on a free port (stopped at the end)."""
    proc = start_server_process("reach", clock="lockstep", port=0, timeout_s=60)
    yield proc
    proc.stop()


def _address(server) -> str:
    return f"robot_server.address={server.endpoint}"


@pytest.mark.timeout(120)
def test_robot_stop_and_clear_errors_against_a_server_process(hilrl, server):
    done = hilrl("clear-errors", "--config", "sim_reach", _address(server), timeout_s=60)
    assert done.returncode == 0, done.stderr
    assert "latched before: nothing latched" in done.stdout and "nothing latched now" in done.stdout

    done = hilrl("robot-stop", "--config", "sim_reach", "--reason", "test stop", _address(server), timeout_s=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and server.endpoint in lines[0]
    assert "operator_stop: test stop" in lines[0] and "hilrl clear-errors --config sim_reach" in lines[0]

    client = RobotClient(server.endpoint, timeout_s=5.0)
    try:
        state = client.state()
        assert any(e.startswith("operator_stop: test stop") for e in state.errors)
        with pytest.raises(RobotServerError) as refused:
            client.set_pose_target(state.tcp_position_m, state.tcp_quaternion_wxyz)
        assert refused.value.code == "controller_error"

        done = hilrl("clear-errors", "--config", "sim_reach", _address(server), timeout_s=60)
        assert done.returncode == 0, done.stderr
        assert "latched before: operator_stop: test stop" in done.stdout
        assert "nothing latched now" in done.stdout
        assert client.state().errors == []
        client.set_pose_target(state.tcp_position_m, state.tcp_quaternion_wxyz)  # accepted again
    finally:
        client.close()


@pytest.mark.timeout(180)
def test_actor_stopped_by_its_operator_leaves_the_server_latched_until_clear_errors(
        monkeypatch, tmp_path, capsys, hilrl, server):
    # Read 6 is the first step's last: the stop comes after that step's motion.
    assert _run_actor(monkeypatch, tmp_path, ["env.connection=server", _address(server)], at=6) == 1
    err = capsys.readouterr().err
    assert "operator stop (keyboard)" in err and "hilrl clear-errors --config FILE" in err
    assert "Traceback" not in err
    done = hilrl("clear-errors", "--config", "sim_reach", _address(server), timeout_s=60)
    assert done.returncode == 0, done.stderr
    assert "operator_stop: operator keyboard stop gesture" in done.stdout


@pytest.mark.timeout(60)
def test_commands_on_an_address_nobody_answers_exit_1_naming_it(hilrl):
    address = f"tcp://127.0.0.1:{free_loopback_port()}"
    for command, says in (("clear-errors", "nothing was cleared"), ("robot-stop", "NOT delivered")):
        started = time.monotonic()
        done = hilrl(command, "--config", "sim_reach", f"robot_server.address={address}",
                     "robot_server.request_timeout_s=0.2", timeout_s=30)
        assert done.returncode == 1, (done.stdout, done.stderr)
        assert address in done.stderr and says in done.stderr and "Traceback" not in done.stderr
        assert time.monotonic() - started < 15


@pytest.mark.timeout(60)
def test_commands_refuse_a_bad_config_with_exit_2(hilrl):
    done = hilrl("robot-stop", "--config", "no_such_config", timeout_s=30)
    assert done.returncode == 2 and "no_such_config" in done.stderr
    done = hilrl("clear-errors", "--config", "sim_reach", "robot_server.request_timeout_s=-1", timeout_s=30)
    assert done.returncode == 2 and "request_timeout_s" in done.stderr
    done = hilrl("robot-stop", "--config", "sim_reach", "robot_server.address=tcp://10.1.2.3:5555", timeout_s=30)
    assert done.returncode == 2 and "robot_server.curve" in done.stderr


@pytest.mark.timeout(60)
def test_clear_errors_says_what_stays_latched_and_exits_1(monkeypatch, capsys):
    """A Franka user stop still pressed survives a clear: said so, exit 1 (an in-process stand-in)."""
    from hilrl.tools import robot_cmds

    class StillPressed:
        def __init__(self, address, timeout_s, curve=None):
            self.retries = 3
            self.robot = InProcessRobot.from_config(ServerConfig(), "reach")

        def state(self):
            return dataclasses.replace(self.robot.state(), errors=["user_stop: the user stop is pressed"])

        def clear_errors(self):
            return self.state()

        def close(self):
            self.robot.close()

    monkeypatch.setattr(robot_cmds, "RobotClient", StillPressed)
    assert robot_cmds.main_clear(["--config", "sim_reach"], prog="hilrl clear-errors") == 1
    out, err = capsys.readouterr()
    assert "still latched after clear_errors: user_stop" in out
    assert "user stop is still pressed: release it" in err
