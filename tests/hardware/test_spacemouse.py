"""SpaceMouse intervention device, against a fake `pyspacemouse` module (tests/hardware/
fake_spacemouse.py) at the library's API boundary: deadzone, axis mapping and scaling, hold time,
button gestures for the gripper and for success/failure labels (through `InterventionWrapper` on
the real sim env), the errors a missing or unreadable device gives, and an unplug mid-episode.

Time is a `FakeClock` and the reader is polled by hand (`start_thread=False`), except in the
unplug test, which runs the real reader thread on the real clock.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE.parents[1]), str(_HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from fake_spacemouse import FakeClock, FakeSpaceMouse  # noqa: E402

from hilrl.actor.config import InterventionConfig  # noqa: E402
from hilrl.actor.interventions import InterventionWrapper, make_intervention_device  # noqa: E402
from hilrl.actor.make import make_sim_env  # noqa: E402
from hilrl.actor.operators import SpaceMouseOperator  # noqa: E402
from hilrl.hardware.errors import InputDeviceError  # noqa: E402
from hilrl.hardware.spacemouse import ButtonBinding, SpaceMouseConfig  # noqa: E402
from hilrl.transport.action import ActionConfig  # noqa: E402
from hilrl.transport.schema import SchemaError, from_dict  # noqa: E402

XYZ_GRIPPER = ActionConfig(translation_scale_m=0.02, rotation_scale_rad=0.0, gripper=True)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mouse(clock, monkeypatch) -> FakeSpaceMouse:
    """A plugged-in SpaceMouse Compact, reachable as `import pyspacemouse`."""
    fake = FakeSpaceMouse(clock)
    monkeypatch.setitem(sys.modules, "pyspacemouse", fake.module)
    return fake


@pytest.fixture
def operators(clock):
    """Build operators polled by hand on the fake clock: `operators(action, **config)`."""
    made: list[SpaceMouseOperator] = []

    def make(action: ActionConfig = XYZ_GRIPPER, **config) -> SpaceMouseOperator:
        op = SpaceMouseOperator(SpaceMouseConfig(**config), action, clock=clock, start_thread=False)
        made.append(op)
        return op

    yield make
    for op in made:
        op.close()


def act(op: SpaceMouseOperator, clock: FakeClock, state=None, dt: float = 0.1) -> np.ndarray | None:
    """One control step: the reader polls, the operator decides, time moves on by `dt`."""
    op.reader.poll()
    out = op.intervene(state, np.zeros(op._dim, np.float32))
    clock.advance(dt)
    return out


def wrapped_step(wrapped: InterventionWrapper, clock: FakeClock, policy_action: np.ndarray):
    wrapped.device.reader.poll()
    out = wrapped.step(policy_action)
    clock.advance(0.1)
    return out


def wait_until(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


# ---------------------------------------------------------------------------- axes


@pytest.mark.timeout(30)
def test_motion_inside_the_deadzone_is_no_intervention_and_past_it_is_rescaled(mouse, clock, operators):
    op = operators(deadzone=0.2)
    mouse.move(x=0.15, y=-0.19, z=0.2)
    assert act(op, clock) is None
    mouse.move(x=0.6)
    action = act(op, clock)
    assert action is not None and action.dtype == np.float32 and action.shape == (4,)
    # (0.6 - 0.2) / (1 - 0.2): 0 at the deadzone's edge, 1 at full deflection
    np.testing.assert_allclose(action, [0.5, 0.0, 0.0, 0.0], atol=1e-6)
    mouse.move(x=-1.0)
    np.testing.assert_allclose(act(op, clock), [-1.0, 0.0, 0.0, 0.0], atol=1e-6)


@pytest.mark.timeout(30)
def test_axis_mapping_per_axis_scale_and_sign_and_clipping(mouse, clock, operators):
    with_rotation = ActionConfig(translation_scale_m=0.02, rotation_scale_rad=0.1, gripper=False)
    op = operators(
        with_rotation,
        deadzone=0.0,
        translation_axes=["y", "x", "z"],
        translation_scale=[0.5, -1.0, 2.0],
        rotation_axes=["yaw", "roll", "pitch"],
        rotation_scale=[1.0, -1.0, 0.0],
    )
    mouse.move(x=0.4, y=0.8, z=0.7, roll=0.2, pitch=-0.5, yaw=0.1)
    action = act(op, clock)
    # action x <- 0.5 * y; y <- -x; z <- 2 z clipped to 1; rotation x <- yaw, y <- -roll, z off
    np.testing.assert_allclose(action, [0.4, -0.4, 1.0, 0.1, -0.2, 0.0], atol=1e-6)


@pytest.mark.timeout(30)
def test_twisting_the_cap_is_no_intervention_when_the_env_has_no_rotation(mouse, clock, operators):
    op = operators(XYZ_GRIPPER)
    mouse.move(roll=0.9, pitch=-0.9, yaw=0.9)
    assert act(op, clock) is None
    mouse.move(z=0.9)
    action = act(op, clock)
    assert action is not None and action[2] > 0.8 and action.shape == (4,)


@pytest.mark.timeout(30)
def test_intervention_holds_the_arm_still_for_hold_s_after_release(mouse, clock, operators):
    op = operators(hold_s=0.5, deadzone=0.1)
    mouse.move(x=1.0)
    np.testing.assert_allclose(act(op, clock, dt=0.1), [1, 0, 0, 0])  # t = 0.0: moving
    mouse.rest()
    for _ in range(4):  # t = 0.1 .. 0.4 after the last motion: still the operator's, arm still
        np.testing.assert_array_equal(act(op, clock, dt=0.1), np.zeros(4, np.float32))
    clock.advance(0.05)  # t = 0.55 > hold_s
    assert act(op, clock) is None
    mouse.move(y=-0.5)  # any new motion takes over again at once
    assert act(op, clock) is not None


@pytest.mark.timeout(30)
def test_a_poll_drains_every_report_keeps_the_newest_axes_and_every_click(mouse, clock, operators):
    op = operators()
    for x in (0.2, 0.4, 0.6, 0.8):
        mouse.move(x=x)
    mouse.click(0)  # press and release between two control steps
    mouse.move(x=0.9)
    op.reader.poll()
    assert mouse.pending == 0
    sample = op.reader.latest()
    assert sample.axes[0] == pytest.approx(0.9)
    action = op.intervene(None, np.zeros(4, np.float32))
    assert action[-1] == 1.0  # the click was not lost: the gripper closes


# ---------------------------------------------------------------------------- buttons


@pytest.mark.timeout(30)
def test_left_button_closes_and_right_button_opens_the_gripper_on_the_sim_arm(mouse, clock):
    env = make_sim_env("pick_cube")
    op = SpaceMouseOperator(SpaceMouseConfig(hold_s=0.3), env.config.action, clock=clock, start_thread=False)
    wrapped = InterventionWrapper(env, op)
    try:
        wrapped.reset(seed=0)
        policy = np.zeros(4, np.float32)
        info = wrapped_step(wrapped, clock, policy)[4]
        assert not info["intervened"]
        mouse.click(0)
        info = wrapped_step(wrapped, clock, policy)[4]
        assert info["intervened"] and info["action_taken"][-1] == 1.0 and info["gripper_switched"]
        info = wrapped_step(wrapped, clock, policy)[4]  # one pulse: then "keep"
        assert info["intervened"] and info["action_taken"][-1] == 0.0 and not info["gripper_switched"]
        for _ in range(5):
            wrapped_step(wrapped, clock, policy)
        assert env.robot_state.gripper_opening < 0.9  # the fingers really closed
        mouse.click(1)
        info = wrapped_step(wrapped, clock, policy)[4]
        assert info["intervened"] and info["action_taken"][-1] == -1.0 and info["gripper_switched"]
        assert info["human_label"] is None
        for _ in range(4):  # hold_s after the click, the policy has the arm back
            info = wrapped_step(wrapped, clock, policy)[4]
        assert not info["intervened"]
    finally:
        wrapped.close()


@pytest.mark.timeout(30)
def test_toggle_button_goes_by_the_measured_gripper_opening(mouse, clock, operators):
    op = operators(close_gripper=None, open_gripper=None, toggle_gripper=ButtonBinding([0]))
    mouse.click(0)
    assert act(op, clock, SimpleNamespace(gripper_opening=1.0))[-1] == 1.0  # open -> close
    mouse.click(0)
    assert act(op, clock, SimpleNamespace(gripper_opening=0.1))[-1] == -1.0  # closed -> open


@pytest.mark.timeout(30)
def test_both_buttons_clicked_label_success_and_never_move_the_gripper(mouse, clock):
    env = make_sim_env("pick_cube")
    op = SpaceMouseOperator(SpaceMouseConfig(), env.config.action, clock=clock, start_thread=False)
    wrapped = InterventionWrapper(env, op)
    try:
        wrapped.reset(seed=0)
        policy = np.full(4, 0.3, np.float32)
        mouse.press(0)  # one finger first: a chord is recognised on release, so nothing fires yet
        obs, reward, terminated, truncated, info = wrapped_step(wrapped, clock, policy)
        assert info["intervened"] and info["action_taken"][-1] == 0.0 and not terminated
        mouse.press(1)
        _, reward, terminated, _, info = wrapped_step(wrapped, clock, policy)
        assert info["intervened"] and info["action_taken"][-1] == 0.0 and not terminated
        mouse.release()
        _, reward, terminated, truncated, info = wrapped_step(wrapped, clock, policy)
        assert terminated and not truncated
        assert reward == 1.0
        assert info["succeeded"] is True and info["human_label"] == "success"
        assert info["action_taken"][-1] == 0.0 and not info["gripper_switched"]
        assert op.label() is None  # a label is returned once
    finally:
        wrapped.close()


@pytest.mark.timeout(30)
def test_both_buttons_held_label_failure(mouse, clock):
    env = make_sim_env("reach")
    op = SpaceMouseOperator(SpaceMouseConfig(long_press_s=0.95), env.config.action, clock=clock, start_thread=False)
    wrapped = InterventionWrapper(env, op)
    try:
        wrapped.reset(seed=0)
        policy = np.zeros(3, np.float32)
        mouse.press(0, 1)
        for _ in range(10):  # held 0.0 .. 0.9 s: not yet (steps are 0.1 s apart)
            _, reward, terminated, truncated, info = wrapped_step(wrapped, clock, policy)
            assert not terminated and info["human_label"] is None and info["intervened"]
        _, reward, terminated, truncated, info = wrapped_step(wrapped, clock, policy)  # 1.0 s
        assert terminated and not truncated and reward == 0.0
        assert info["succeeded"] is False and info["human_label"] == "failure"
        mouse.release()  # letting go after a long gesture fires nothing else
        op.reader.poll()
        assert op.label() is None
        wrapped.reset(seed=1)
        info = wrapped_step(wrapped, clock, policy)[4]
        assert info["human_label"] is None and not info["intervened"]
    finally:
        wrapped.close()


# ---------------------------------------------------------------------------- errors


def _assert_udev_help(message: str) -> None:
    for fragment in ("/etc/udev/rules.d/99-spacemouse.rules", 'SUBSYSTEM=="hidraw"', 'ATTRS{idVendor}=="256f"',
                     'MODE="0666"', "046d", "sudo udevadm control --reload-rules && sudo udevadm trigger"):
        assert fragment in message, fragment


@pytest.mark.timeout(30)
def test_no_device_connected_says_so_with_the_udev_rule(mouse, clock):
    mouse.unplug()
    with pytest.raises(InputDeviceError) as err:
        SpaceMouseOperator(SpaceMouseConfig(), XYZ_GRIPPER, clock=clock, start_thread=False)
    message = str(err.value)
    assert "not found" in message and "Supported devices found: none" in message
    _assert_udev_help(message)


@pytest.mark.timeout(30)
def test_a_device_or_path_that_is_not_there_lists_the_devices_found(mouse, clock):
    for config in (SpaceMouseConfig(device="SpaceMouse Pro"), SpaceMouseConfig(path="/dev/hidraw9")):
        with pytest.raises(InputDeviceError) as err:
            SpaceMouseOperator(config, XYZ_GRIPPER, clock=clock, start_thread=False)
        assert "not found" in str(err.value) and "['SpaceMouse Compact']" in str(err.value)
        _assert_udev_help(str(err.value))
    op = SpaceMouseOperator(SpaceMouseConfig(path="/dev/hidraw7"), XYZ_GRIPPER, clock=clock, start_thread=False)
    op.close()
    assert mouse.open_calls[-1] == {"device": None, "path": "/dev/hidraw7"}


@pytest.mark.timeout(30)
def test_permission_denied_names_the_cause_and_the_udev_rule(mouse, clock):
    mouse.permission_denied = True
    with pytest.raises(InputDeviceError) as err:
        SpaceMouseOperator(SpaceMouseConfig(), XYZ_GRIPPER, clock=clock, start_thread=False)
    message = str(err.value)
    assert "cannot be opened" in message and "permission" in message and "Failed to open device" in message
    assert "['SpaceMouse Compact']" in message
    _assert_udev_help(message)


@pytest.mark.timeout(30)
def test_pyspacemouse_not_installed_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspacemouse", None)  # makes `import pyspacemouse` fail
    with pytest.raises(InputDeviceError, match="pip install"):
        SpaceMouseOperator(SpaceMouseConfig(), XYZ_GRIPPER, start_thread=False)


# ---------------------------------------------------------------------------- losing the device


@pytest.mark.timeout(30)
def test_unplugged_mid_episode_ends_the_intervention_warns_once_and_the_env_keeps_stepping(monkeypatch, caplog):
    fake = FakeSpaceMouse(time.monotonic)  # the real reader thread on the real clock
    monkeypatch.setitem(sys.modules, "pyspacemouse", fake.module)
    env = make_sim_env("reach")
    config = SpaceMouseConfig(read_hz=200, hold_s=0.0, reconnect_initial_s=0.02, reconnect_max_s=0.05)
    wrapped = InterventionWrapper(env, SpaceMouseOperator(config, env.config.action))
    reader = wrapped.device.reader
    try:
        wrapped.reset(seed=0)
        policy = np.array([0.0, 0.0, 0.5], np.float32)
        fake.move(x=1.0)
        wait_until(lambda: reader.latest() is not None and reader.latest().axes[0] == 1.0)
        info = wrapped.step(policy)[4]
        assert info["intervened"] and info["action_taken"][0] == 1.0

        with caplog.at_level(logging.INFO, logger="hilrl.hardware.spacemouse"):
            fake.unplug()
            wait_until(lambda: not reader.connected)
            for _ in range(10):
                _, _, terminated, truncated, info = wrapped.step(policy)
                assert not info["intervened"]
                np.testing.assert_array_equal(info["action_taken"], policy)
                if terminated or truncated:
                    wrapped.reset()
            attempts = fake.open_calls.copy()
            wait_until(lambda: len(fake.open_calls) >= len(attempts) + 3)  # it keeps retrying, quietly
            warnings = [r for r in caplog.records if r.name == "hilrl.hardware.spacemouse" and r.levelno >= logging.WARNING]
            assert len(warnings) == 1, [r.getMessage() for r in warnings]
            assert "disconnected" in warnings[0].getMessage() and "policy acts" in warnings[0].getMessage()

            fake.plug()
            wait_until(lambda: reader.connected)
            assert any("reconnected" in r.getMessage() for r in caplog.records)
        fake.move(x=-1.0)
        wait_until(lambda: reader.latest() is not None and reader.latest().axes[0] == -1.0)
        info = wrapped.step(policy)[4]
        assert info["intervened"] and info["action_taken"][0] == -1.0
    finally:
        wrapped.close()


@pytest.mark.timeout(30)
def test_axes_frozen_while_deflected_count_as_a_lost_device_but_a_cap_at_rest_does_not(mouse, clock, operators, caplog):
    op = operators(stale_timeout_s=0.5, reconnect=False)
    mouse.move(x=0.3)
    act(op, clock, dt=2.0)
    mouse.rest()
    act(op, clock, dt=5.0)  # at rest a SpaceMouse sends nothing: that is not a lost device
    assert op.reader.connected
    mouse.move(x=0.8)
    assert act(op, clock, dt=0.3) is not None  # streaming while deflected
    assert act(op, clock, dt=0.3) is not None
    mouse.freeze()
    with caplog.at_level(logging.WARNING, logger="hilrl.hardware.spacemouse"):
        assert act(op, clock, dt=0.3) is not None  # 0.3 s silent: fine
        assert act(op, clock, dt=0.3) is None  # 0.6 s silent while deflected: gone
        assert act(op, clock, dt=0.3) is None
    assert not op.reader.connected
    messages = [r.getMessage() for r in caplog.records if r.name == "hilrl.hardware.spacemouse"]
    assert len(messages) == 1 and "while its cap was deflected" in messages[0] and "not reconnecting" in messages[0]


@pytest.mark.timeout(30)
def test_a_press_interrupted_by_an_unplug_fires_nothing(mouse, clock, operators):
    op = operators(reconnect_initial_s=0.1, reconnect_max_s=0.1)
    mouse.press(0)
    act(op, clock)
    mouse.unplug()
    assert act(op, clock) is None
    mouse.plug()  # comes back with no button down
    for _ in range(3):
        action = act(op, clock)
    assert op.reader.connected
    assert action is None  # no phantom "close" from the press the unplug cut short
    assert op.label() is None


# ---------------------------------------------------------------------------- config


@pytest.mark.timeout(30)
def test_config_errors_name_the_field():
    cases = [
        ({"deadzone": 1.0}, "deadzone"),
        ({"translation_scale": [1.0, 1.0]}, "translation_scale"),
        ({"rotation_scale": [1.0, float("nan"), 1.0]}, "rotation_scale"),
        ({"translation_axes": ["x", "x", "z"]}, "translation_axes"),
        ({"rotation_axes": ["x", "pitch", "yaw"]}, "rotation_axes"),
        ({"hold_s": -0.1}, "hold_s"),
        ({"read_hz": 0.0}, "read_hz"),
        ({"long_press_s": 0.0}, "long_press_s"),
        ({"reconnect_initial_s": 10.0}, "reconnect_initial_s"),
        ({"failure": ButtonBinding([0, 1])}, "failure"),
    ]
    for kwargs, field_name in cases:
        with pytest.raises(ValueError, match=field_name):
            SpaceMouseConfig(**kwargs)
    with pytest.raises(ValueError, match="buttons"):
        ButtonBinding([0, 0])


@pytest.mark.timeout(30)
def test_yaml_section_builds_the_device_and_bad_values_name_the_key(mouse):
    section = {
        "device": "spacemouse",
        "spacemouse": {
            "deadzone": 0.2,
            "translation_scale": [1, -1, 1],
            "success": {"buttons": [0, 1]},
            "failure": {"buttons": [1], "long": True},
            "open_gripper": None,
        },
    }
    config = from_dict(InterventionConfig, section, "actor.intervention")
    assert config.spacemouse.failure == ButtonBinding([1], long=True)
    env = make_sim_env("reach")
    try:
        device = make_intervention_device(config, "reach", env)
        assert isinstance(device, SpaceMouseOperator)
        device.close()
    finally:
        env.close()
    with pytest.raises(SchemaError) as err:
        from_dict(InterventionConfig, {"spacemouse": {"deadzone": 1.5}}, "actor.intervention")
    assert "actor.intervention.spacemouse" in str(err.value) and "deadzone" in str(err.value)
    assert InterventionConfig().spacemouse == SpaceMouseConfig()  # configs without the section keep loading
