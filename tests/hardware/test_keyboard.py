"""Keyboard intervention device: key events (fed through `QueuedKeySource`, no terminal needed)
drive actions, the gripper and success/failure labels (through `InterventionWrapper` on the real
sim env); the terminal source is checked on a pseudo-terminal and refuses what is not a TTY."""

from __future__ import annotations

import os
import sys
import termios
import time
from pathlib import Path

import numpy as np
import pytest

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE.parents[1]), str(_HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from fake_spacemouse import FakeClock  # noqa: E402

from hilrl.actor.config import InterventionConfig  # noqa: E402
from hilrl.actor.interventions import InterventionWrapper, make_intervention_device  # noqa: E402
from hilrl.actor.make import make_sim_env  # noqa: E402
from hilrl.actor.operators import KeyboardOperator  # noqa: E402
from hilrl.hardware.errors import InputDeviceError  # noqa: E402
from hilrl.hardware.keyboard import (  # noqa: E402
    KeyboardConfig,
    QueuedKeySource,
    TerminalKeySource,
)
from hilrl.transport.action import ActionConfig  # noqa: E402
from hilrl.transport.schema import SchemaError, from_dict  # noqa: E402

XYZ_GRIPPER = ActionConfig(translation_scale_m=0.02, rotation_scale_rad=0.0, gripper=True)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_operator(clock: FakeClock, action: ActionConfig = XYZ_GRIPPER, **config) -> tuple[KeyboardOperator, QueuedKeySource]:
    keys = QueuedKeySource()
    return KeyboardOperator(KeyboardConfig(**config), action, source=keys, clock=clock), keys


def act(op: KeyboardOperator, clock: FakeClock, dt: float = 0.1) -> np.ndarray | None:
    out = op.intervene(None, np.zeros(op._dim, np.float32))
    clock.advance(dt)
    return out


@pytest.mark.timeout(30)
def test_motion_keys_move_their_axis_for_motion_s_and_intervene_for_hold_s(clock):
    op, keys = make_operator(clock, speed=0.5, motion_s=0.25, hold_s=0.45)
    assert act(op, clock) is None  # no key: the policy acts
    keys.feed("w")
    np.testing.assert_allclose(act(op, clock), [0.5, 0, 0, 0])  # t = 0
    keys.feed("d")
    np.testing.assert_allclose(act(op, clock), [0.5, -0.5, 0, 0])  # t = 0.1: both axes move
    keys.feed("F")  # upper case works too
    np.testing.assert_allclose(act(op, clock), [0.5, -0.5, -0.5, 0])  # t = 0.2
    np.testing.assert_allclose(act(op, clock), [0, -0.5, -0.5, 0])  # t = 0.3: w pressed 0.3 s ago
    act(op, clock)
    act(op, clock)
    np.testing.assert_allclose(act(op, clock), [0, 0, 0, 0])  # t = 0.6: arm held still
    clock.advance(0.1)
    assert act(op, clock) is None  # t = 0.8 > 0.2 + hold_s: the policy's again
    keys.feed("s")
    np.testing.assert_allclose(act(op, clock), [-0.5, 0, 0, 0])
    clock.advance(1.0)
    # unbound keys, arrow keys (ESC [ A, ESC O B: not "A" = y_plus) and Alt+w neither move nor intervene
    keys.feed("x?\x1b[A\x1bOB\x1b[1;5D\x1bw")
    assert act(op, clock) is None
    keys.feed("\x1b[Cw")
    np.testing.assert_allclose(act(op, clock), [0.5, 0, 0, 0])


@pytest.mark.timeout(30)
def test_gripper_keys_send_one_close_or_open_command(clock):
    op, keys = make_operator(clock)
    keys.feed("c")
    assert act(op, clock)[-1] == 1.0
    assert act(op, clock)[-1] == 0.0  # then "keep"
    keys.feed("o")
    np.testing.assert_allclose(act(op, clock), [0, 0, 0, -1])
    op_no_gripper, keys = make_operator(clock, ActionConfig(gripper=False))
    keys.feed("c")
    np.testing.assert_allclose(act(op_no_gripper, clock), [0, 0, 0])  # still the operator's step


@pytest.mark.timeout(30)
def test_keys_drive_the_sim_arm_and_label_success_and_failure(clock):
    env = make_sim_env("pick_cube")
    keys = QueuedKeySource()
    wrapped = InterventionWrapper(env, KeyboardOperator(KeyboardConfig(), env.config.action, source=keys, clock=clock))
    try:
        wrapped.reset(seed=0)
        policy = np.zeros(4, np.float32)
        start = env.robot_state.tcp_position_m.copy()
        keys.feed("rc")
        _, reward, terminated, truncated, info = wrapped.step(policy)
        assert info["intervened"] and info["gripper_switched"] and info["human_label"] is None
        np.testing.assert_allclose(info["action_taken"], [0, 0, 0.5, 1.0])
        for _ in range(3):
            clock.advance(0.1)
            wrapped.step(policy)
        assert not np.allclose(env.robot_state.tcp_position_m, start, atol=1e-3)  # the arm moved
        keys.feed("y")
        _, reward, terminated, truncated, info = wrapped.step(policy)
        assert terminated and not truncated and reward == 1.0
        assert info["succeeded"] is True and info["human_label"] == "success"

        keys.feed("n")  # typed during the reset: belongs to no episode
        wrapped.reset(seed=1)
        clock.advance(5.0)
        info = wrapped.step(policy)[4]
        assert info["human_label"] is None and not info["intervened"]
        keys.feed("N")
        _, reward, terminated, truncated, info = wrapped.step(policy)
        assert terminated and not truncated and reward == 0.0
        assert info["succeeded"] is False and info["human_label"] == "failure"
    finally:
        wrapped.close()


@pytest.mark.timeout(30)
def test_terminal_source_reads_keys_unechoed_from_a_tty_and_restores_it():
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        source = TerminalKeySource(slave)
        lflag = termios.tcgetattr(slave)[3]
        assert not lflag & termios.ICANON and not lflag & termios.ECHO and lflag & termios.ISIG
        assert source.read_keys() == ""  # nothing typed: returns at once
        os.write(master, b"wc")  # no Enter: cbreak mode delivers keys one by one
        keys = ""
        for _ in range(200):  # the pty delivers within microseconds; bounded anyway
            keys += source.read_keys()
            if len(keys) == 2:
                break
            time.sleep(0.005)
        assert keys == "wc"
        op = KeyboardOperator(KeyboardConfig(), XYZ_GRIPPER, source=source)
        os.write(master, b"a")
        for _ in range(200):
            action = op.intervene(None, np.zeros(4, np.float32))
            if action is not None:
                break
            time.sleep(0.005)
        assert action is not None and action[1] == 0.5
        op.close()
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.timeout(30)
def test_stdin_that_is_not_a_tty_gives_a_clear_error(monkeypatch):
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(InputDeviceError, match="not a TTY") as err:
            TerminalKeySource(read_end)
        assert "interactive terminal" in str(err.value) and "spacemouse" in str(err.value)
    finally:
        os.close(read_end)
        os.close(write_end)
    with open(os.devnull) as devnull:
        monkeypatch.setattr(sys, "stdin", devnull)
        env = make_sim_env("reach")
        try:
            with pytest.raises(InputDeviceError, match="interactive terminal"):
                make_intervention_device(InterventionConfig(device="keyboard"), "reach", env)
        finally:
            env.close()


@pytest.mark.timeout(30)
def test_keyboard_config_validates_and_loads_from_yaml():
    with pytest.raises(ValueError, match="failure"):
        KeyboardConfig(failure="Y")  # same key as success, case-insensitively
    with pytest.raises(ValueError, match="x_plus"):
        KeyboardConfig(x_plus="up")
    with pytest.raises(ValueError, match="hold_s"):
        KeyboardConfig(motion_s=0.8, hold_s=0.5)
    with pytest.raises(ValueError, match="speed"):
        KeyboardConfig(speed=1.5)
    config = from_dict(InterventionConfig, {"device": "keyboard", "keyboard": {"success": "g", "speed": 1.0}}, "actor.intervention")
    assert config.keyboard.success == "g" and config.keyboard.bindings["g"] == "success"
    with pytest.raises(SchemaError, match=r"actor\.intervention\.keyboard.*z_minus"):
        from_dict(InterventionConfig, {"keyboard": {"z_minus": "w"}}, "actor.intervention")
