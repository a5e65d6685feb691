"""Gamepad intervention device, against a fake `pygame` module (tests/hardware/fake_pygame.py) at
the library's API boundary: deadzone and axis mapping (Xbox signs), rotation only when the env has
it and the config enables it, hold time, gripper on buttons or triggers, labels once per press and
success_held (through `InterventionWrapper` on the real sim env), the operator stop (once, and
during a reset), the errors a missing or unfitting pad gives, an unplug mid-episode and the
replug, config validation naming the key, and `hilrl record-demos` / `record-labels` with the
device. One test runs the real pygame (dummy video driver) with no pad connected.

Time is a `FakeClock` and the operator polls the reader itself (`start_thread=False`), except
where a test says it runs the real reader thread on the real clock.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE.parents[1]), str(_HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from fake_pygame import JOYDEVICEREMOVED, WINDOWEVENT, Event, FakePygame  # noqa: E402
from fake_spacemouse import FakeClock  # noqa: E402

from hilrl.actor.config import InterventionConfig  # noqa: E402
from hilrl.actor.interventions import (  # noqa: E402
    InterventionWrapper,
    OperatorStopped,
    make_intervention_device,
)
from hilrl.actor.make import make_sim_env  # noqa: E402
from hilrl.actor.operators import GamepadOperator  # noqa: E402
from hilrl.configs import config_path  # noqa: E402
from hilrl.hardware.errors import InputDeviceError  # noqa: E402
from hilrl.hardware.gamepad import AxisMapping, Control, GamepadConfig, GamepadReader  # noqa: E402
from hilrl.transport.action import ActionConfig  # noqa: E402
from hilrl.transport.config import load_document  # noqa: E402
from hilrl.transport.schema import SchemaError, from_dict  # noqa: E402

XYZ_GRIPPER = ActionConfig(translation_scale_m=0.02, rotation_scale_rad=0.0, gripper=True)
XYZ_ROT_GRIPPER = ActionConfig(translation_scale_m=0.02, rotation_scale_rad=0.1, gripper=True)
# Xbox 360 under SDL2: axes, buttons.
LX, LY, LT, RX, RY, RT = range(6)
A, B, X, Y, LB, RB, BACK = range(7)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def pg() -> FakePygame:
    return FakePygame()


@pytest.fixture
def pad(pg):
    """An Xbox 360 pad plugged in before the program starts."""
    return pg.plug_pad()


@pytest.fixture
def operators(pg, clock):
    """Build operators that poll the fake pygame on the fake clock: `operators(action, **config)`."""
    made: list[GamepadOperator] = []

    def make(action: ActionConfig = XYZ_GRIPPER, **config) -> GamepadOperator:
        op = GamepadOperator(GamepadConfig(**config), action, backend=pg.module, clock=clock, start_thread=False)
        made.append(op)
        return op

    yield make
    for op in made:
        op.close()


def act(op: GamepadOperator, clock: FakeClock, state=None, dt: float = 0.1) -> np.ndarray | None:
    """One control step: the operator decides (polling the pad), time moves on by `dt`."""
    out = op.intervene(state, np.zeros(op._dim, np.float32))
    clock.advance(dt)
    return out


def step(wrapped: InterventionWrapper, clock: FakeClock, policy_action: np.ndarray):
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
def test_sticks_inside_the_deadzone_are_no_intervention_and_past_it_are_rescaled_with_xbox_signs(pad, clock, operators):
    op = operators(deadzone=0.2)
    pad.set_axes(a0=0.15, a1=-0.19, a4=0.2)  # stick drift
    pg_window = Event(WINDOWEVENT, event=1)  # an event the reader has no use for
    pad.fake.post(pg_window)
    assert act(op, clock) is None
    pad.set_axis(LX, 0.6)
    action = act(op, clock)
    assert action is not None and action.dtype == np.float32 and action.shape == (4,)
    # (0.6 - 0.2) / (1 - 0.2): 0 at the deadzone's edge, 1 at full deflection
    np.testing.assert_allclose(action, [0.5, 0.0, 0.0, 0.0], atol=1e-6)
    # Stick y reads -1 pushed up: up is +y (left stick) and +z (right stick).
    pad.set_axes(a0=-1.0, a1=-1.0, a4=-0.6)
    np.testing.assert_allclose(act(op, clock), [-1.0, 1.0, 0.5, 0.0], atol=1e-6)
    pad.set_axes(a1=0.6, a4=1.0)
    np.testing.assert_allclose(act(op, clock), [-1.0, -0.5, -1.0, 0.0], atol=1e-6)
    sample = op.reader.latest()
    assert sample.raw_axes[LY] == pytest.approx(0.6) and sample.axes[LY] == pytest.approx(0.5)
    assert sample.axes[LT] == 0.0 and sample.axes[RT] == 0.0  # released triggers: no pull


@pytest.mark.timeout(30)
def test_axis_mapping_scale_minus_axis_hat_and_clipping(pad, clock, operators):
    op = operators(
        XYZ_ROT_GRIPPER,
        deadzone=0.0,
        rotation=True,
        x=AxisMapping(axis=RX, scale=0.5),
        y=AxisMapping(axis=LX, scale=-1.0),
        z=AxisMapping(axis=LY, scale=2.0),
        rx=AxisMapping(axis=RT, minus_axis=LT),  # the default: right trigger +, left trigger -
        ry=AxisMapping(hat_y=0, scale=0.5),
        rz=AxisMapping(hat_x=0, scale=-1.0),
    )
    pad.set_axes(a3=0.8, a0=0.4, a1=0.7, a5=0.0, a2=-1.0)  # right trigger half pulled, left released
    pad.set_hat(0, (1, -1))
    action = act(op, clock)
    # x <- 0.5 RX; y <- -LX; z <- 2 LY clipped to 1; rx <- pull(RT) - pull(LT); ry <- 0.5 hat y; rz <- -hat x
    np.testing.assert_allclose(action, [0.4, -0.4, 1.0, 0.5, -0.5, -1.0, 0.0], atol=1e-6)


@pytest.mark.timeout(30)
def test_rotation_only_when_the_env_has_it_and_the_config_enables_it(pad, clock, operators):
    rotation_off = operators(XYZ_ROT_GRIPPER)  # the env has rotation dims, the config keeps them still
    no_dims = operators(XYZ_GRIPPER, rotation=True)  # the config would, the env has none
    both = operators(XYZ_ROT_GRIPPER, rotation=True)
    pad.set_axis(RX, 0.9)  # right stick left/right: rz with rotation
    pad.set_hat(0, (0, 1))  # d-pad up: ry
    assert act(rotation_off, clock, dt=0.0) is None  # not even an intervention
    assert act(no_dims, clock, dt=0.0) is None
    action = act(both, clock, dt=0.0)
    assert action.shape == (7,)
    np.testing.assert_allclose(action, [0, 0, 0, 0, 0.5, (0.9 - 0.15) / 0.85, 0], atol=1e-6)
    pad.set_axis(LX, 1.0)
    action = act(rotation_off, clock, dt=0.0)
    assert action.shape == (7,)
    np.testing.assert_allclose(action, [1, 0, 0, 0, 0, 0, 0], atol=1e-6)  # rotation dims held at 0
    np.testing.assert_allclose(act(no_dims, clock, dt=0.0), [1, 0, 0, 0], atol=1e-6)


@pytest.mark.timeout(30)
def test_intervention_holds_the_arm_still_for_hold_s_after_the_last_input(pad, clock, operators):
    op = operators(hold_s=0.5)
    pad.set_axis(LX, 1.0)
    np.testing.assert_allclose(act(op, clock), [1, 0, 0, 0])  # t = 0.0: moving
    pad.set_axis(LX, 0.0)
    for _ in range(4):  # t = 0.1 .. 0.4 after the last motion: still the operator's, arm still
        np.testing.assert_array_equal(act(op, clock), np.zeros(4, np.float32))
    clock.advance(0.05)  # t = 0.55 > hold_s
    assert act(op, clock) is None
    pad.set_axis(LY, 0.5)  # any new motion takes over again at once
    assert act(op, clock) is not None


# ---------------------------------------------------------------------------- buttons


@pytest.mark.timeout(30)
def test_bumpers_close_and_open_the_gripper_on_the_sim_arm_and_a_quick_click_is_not_lost(pad, clock):
    env = make_sim_env("pick_cube")
    op = GamepadOperator(GamepadConfig(hold_s=0.3), env.config.action, backend=pad.fake.module, clock=clock,
                         start_thread=False)
    wrapped = InterventionWrapper(env, op)
    try:
        wrapped.reset(seed=0)
        policy = np.zeros(4, np.float32)
        assert not step(wrapped, clock, policy)[4]["intervened"]
        pad.click(RB)  # pressed and released between two polls
        info = step(wrapped, clock, policy)[4]
        assert info["intervened"] and info["action_taken"][-1] == 1.0 and info["gripper_switched"]
        info = step(wrapped, clock, policy)[4]  # one pulse: then "keep"
        assert info["intervened"] and info["action_taken"][-1] == 0.0 and not info["gripper_switched"]
        for _ in range(5):
            step(wrapped, clock, policy)
        assert env.robot_state.gripper_opening < 0.9  # the fingers really closed
        pad.press(LB)
        info = step(wrapped, clock, policy)[4]
        assert info["intervened"] and info["action_taken"][-1] == -1.0 and info["gripper_switched"]
        info = step(wrapped, clock, policy)[4]  # still held: no second pulse, but still the operator's
        assert info["intervened"] and info["action_taken"][-1] == 0.0 and info["human_label"] is None
        pad.release(LB)
        for _ in range(4):  # hold_s after the release, the policy has the arm back
            info = step(wrapped, clock, policy)[4]
        assert not info["intervened"]
    finally:
        wrapped.close()


@pytest.mark.timeout(30)
def test_gripper_on_the_triggers_fires_once_per_pull(pad, clock, operators):
    op = operators(close_gripper=Control(trigger=RT), open_gripper=Control(trigger=LT))
    assert act(op, clock) is None  # released triggers (-1) are no pull
    pad.set_axis(RT, -0.2)  # pulled 40 %: less than trigger_press
    assert act(op, clock) is None
    pad.set_axis(RT, 0.6)  # 80 %
    assert act(op, clock)[-1] == 1.0
    assert act(op, clock)[-1] == 0.0  # still pulled: keep
    pad.set_axis(RT, -1.0)
    pad.set_axis(LT, 1.0)
    assert act(op, clock)[-1] == -1.0
    with pytest.raises(ValueError, match="close_gripper uses trigger axis 5, which also drives rx"):
        GamepadConfig(rotation=True, close_gripper=Control(trigger=RT))
    with pytest.raises(ValueError, match=r"close_gripper uses trigger axis 4, which is not in trigger_axes \[2, 5\]"):
        GamepadConfig(close_gripper=Control(trigger=4))


@pytest.mark.timeout(30)
def test_a_trigger_reads_nothing_until_it_has_reported_its_rest_position(pg, clock, operators):
    pg.plug_pad(triggers_unread=True)  # SDL reads 0 (half pulled) for an axis it has not polled yet
    pad = pg.plugged[0]
    op = operators(XYZ_ROT_GRIPPER, rotation=True, close_gripper=Control(button=RB))
    assert act(op, clock) is None  # no phantom roll from rx = RT - LT, both "half pulled"
    assert op.reader.latest().raw_axes[RT] == 0.0
    pad.set_axis(RT, -1.0)  # first real report: released
    assert act(op, clock) is None
    pad.set_axis(RT, 1.0)
    np.testing.assert_allclose(act(op, clock)[3], 1.0)  # from now on it reads (LT still unread: 0)


@pytest.mark.timeout(30)
def test_a_and_b_label_the_episode_once_per_press(pad, clock):
    env = make_sim_env("reach")
    op = GamepadOperator(GamepadConfig(), env.config.action, backend=pad.fake.module, clock=clock, start_thread=False)
    wrapped = InterventionWrapper(env, op)
    try:
        wrapped.reset(seed=0)
        policy = np.full(3, 0.3, np.float32)
        pad.press(A)
        _, reward, terminated, truncated, info = step(wrapped, clock, policy)
        assert terminated and not truncated and reward == 1.0
        assert info["succeeded"] is True and info["human_label"] == "success" and info["intervened"]
        assert op.label() is None  # a label is returned once, however long A is held
        wrapped.reset(seed=1)
        _, _, terminated, _, info = step(wrapped, clock, policy)  # A still held: no second label
        assert not terminated and info["human_label"] is None
        pad.release(A)
        pad.click(B)
        _, reward, terminated, truncated, info = step(wrapped, clock, policy)
        assert terminated and reward == 0.0 and info["succeeded"] is False and info["human_label"] == "failure"
        pad.click(A)  # pressed while the arm goes home: belongs to no episode
        wrapped.reset(seed=2)
        info = step(wrapped, clock, policy)[4]
        assert info["human_label"] is None and not info["intervened"]
    finally:
        wrapped.close()


@pytest.mark.timeout(30)
def test_success_held_while_the_button_is_held(pad, clock, operators):
    op = operators()
    no_hold = operators(success_hold=None)
    assert not op.success_held()
    pad.press(Y)
    assert op.success_held() and not no_hold.success_held()
    clock.advance(2.0)  # held long: nothing else fires
    assert op.success_held() and op.label() is None and not op.stop_requested()
    assert act(op, clock) is not None  # a held control is the operator's: the arm holds still
    pad.release(Y)
    assert not op.success_held() and op.label() is None
    pad.press(Y)
    pad.unplug()
    assert not op.success_held()  # a lost pad shows no success


# ---------------------------------------------------------------------------- operator stop


@pytest.mark.timeout(30)
def test_back_stops_once_per_press_and_a_press_during_a_reset_still_counts(pad, clock, operators):
    op = operators()
    pad.click(BACK)
    assert op.stop_requested() and not op.stop_requested()  # true once
    pad.press(BACK)
    clock.advance(1.0)
    assert op.stop_requested() and not op.stop_requested()  # held: still one stop
    pad.release(BACK)
    pad.click(A)  # during the reset: a label that belongs to no episode, dropped
    pad.click(BACK)  # and a stop, kept
    op.reset()
    assert op.label() is None
    assert op.stop_requested()
    pad.click(BACK)
    for _ in range(300):  # a stop, then more presses than the queue keeps (256), all before the next step
        pad.click(RB)
        op.reader.poll()
    assert op.stop_requested()  # never dropped
    assert not operators(stop=None).stop_requested()


@pytest.mark.timeout(60)
def test_back_stops_the_arm_before_any_motion_through_the_wrapper(pad, clock):
    env = make_sim_env("reach")
    op = GamepadOperator(GamepadConfig(), env.config.action, backend=pad.fake.module, clock=clock, start_thread=False)
    wrapped = InterventionWrapper(env, op)
    try:
        wrapped.reset(seed=0)
        policy = np.full(3, 0.8, np.float32)
        step(wrapped, clock, policy)
        t0 = env.robot_state.robot_time_s
        pad.set_axis(LX, 1.0)  # a motion and the stop in the same step: the stop wins
        pad.click(BACK)
        _, reward, terminated, truncated, info = step(wrapped, clock, policy)
        assert truncated and not terminated and reward == 0.0
        assert "gamepad" in info["operator_stop"] and any("operator_stop" in e for e in info["robot_errors"])
        assert env.robot_state.robot_time_s == t0  # no motion command went out
        with pytest.raises(OperatorStopped):
            wrapped.reset(seed=1)
    finally:
        wrapped.close()

    env = make_sim_env("reach")
    pad.set_axis(LX, 0.0)
    wrapped = InterventionWrapper(env, GamepadOperator(GamepadConfig(), env.config.action, backend=pad.fake.module,
                                                       clock=clock, start_thread=False))
    try:
        pad.click(BACK)  # before the first reset (the arm going home): still a stop
        with pytest.raises(OperatorStopped, match="gamepad"):
            wrapped.reset(seed=0)
    finally:
        wrapped.close()


# ---------------------------------------------------------------------------- errors


@pytest.mark.timeout(30)
def test_no_joystick_connected_says_so_and_how_to_check(pg, clock):
    with pytest.raises(InputDeviceError) as err:
        GamepadOperator(GamepadConfig(), XYZ_GRIPPER, backend=pg.module, clock=clock, start_thread=False)
    message = str(err.value)
    assert "no joystick is connected" in message and "get_count() is 0" in message
    assert "/dev/input/by-id" in message and "input" in message
    assert not pg.display_inited and not pg.joystick_inited  # what it started, it quit


@pytest.mark.timeout(30)
def test_a_joystick_that_is_not_there_lists_the_connected_ones(pg, clock):
    pg.plug_pad(name="SpaceMouse Compact", axes=6, buttons=2, hats=0, trigger_axes=())  # SDL lists it too
    pg.plug_pad()
    listing = ("0: 'SpaceMouse Compact' (6 axes, 2 buttons, 0 hats); "
               "1: 'Xbox 360 Controller' (6 axes, 11 buttons, 1 hats)")
    for selector, what in ((5, "joystick index 5 is not connected"), ("PS4", "a joystick named like 'PS4'")):
        with pytest.raises(InputDeviceError) as err:
            GamepadReader(GamepadConfig(joystick=selector), pg.module, clock, start_thread=False)
        assert what in str(err.value) and listing in str(err.value), str(err.value)
        assert "actor.intervention.gamepad.joystick" in str(err.value)
    with pytest.raises(InputDeviceError, match=r"stop\.button reads button 6, but it has 2 buttons"):
        GamepadReader(GamepadConfig(joystick="spacemouse"), pg.module, clock, start_thread=False)
    # The default takes the first joystick that fits the mapping: the pad, not the SpaceMouse.
    reader = GamepadReader(GamepadConfig(), pg.module, clock, start_thread=False)
    assert (reader.index, reader.name) == (1, "Xbox 360 Controller")
    reader.close()
    reader = GamepadReader(GamepadConfig(joystick="xbox"), pg.module, clock, start_thread=False)
    assert reader.index == 1 and reader.connected
    reader.close()


@pytest.mark.timeout(30)
def test_a_pad_without_the_mapped_axes_is_refused_naming_the_field(pg, clock):
    pg.plug_pad(name="Generic USB Gamepad", axes=4, buttons=12, hats=1, trigger_axes=())
    with pytest.raises(InputDeviceError) as err:
        GamepadReader(GamepadConfig(), pg.module, clock, start_thread=False)
    assert "z.axis reads axis 4, but it has 4 axes" in str(err.value)
    assert "0: 'Generic USB Gamepad' (4 axes, 12 buttons, 1 hats)" in str(err.value)
    config = GamepadConfig(z=AxisMapping(axis=3, scale=-1.0), trigger_axes=[])  # a mapping for this pad
    reader = GamepadReader(config, pg.module, clock, start_thread=False)
    assert reader.connected
    reader.close()


@pytest.mark.timeout(30)
def test_pygame_not_installed_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)  # makes `import pygame` fail
    with pytest.raises(InputDeviceError, match="pip install"):
        GamepadOperator(GamepadConfig(), XYZ_GRIPPER, start_thread=False)


# ---------------------------------------------------------------------------- losing the pad


@pytest.mark.timeout(30)
def test_unplugged_mid_episode_ends_the_takeover_at_once_with_one_warning_and_a_replug_works(pad, clock, operators, caplog):
    op = operators(hold_s=1.0)
    pad.set_axis(LX, 1.0)
    assert act(op, clock) is not None
    pad.press(RB)
    with caplog.at_level(logging.INFO, logger="hilrl.hardware.gamepad"):
        pad.unplug()  # the pad's object keeps answering with its last (deflected) state, as SDL's does
        for _ in range(5):  # within hold_s, and deflected when it went: the policy acts at once
            assert act(op, clock) is None
        assert not op.reader.connected and op.reader.disconnects == 1
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        message = warnings[0].getMessage()
        assert "disconnected" in message and "unplugged" in message and "policy acts" in message
        clock.advance(3.0)  # the periodic retry finds nothing: quietly
        assert act(op, clock) is None and len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1

        pad.plug()  # back, at rest
        assert act(op, clock) is None
        assert op.reader.connected and any("reconnected" in r.getMessage() for r in caplog.records)
    pad.set_axis(LX, -1.0)
    np.testing.assert_allclose(act(op, clock), [-1.0, 0.0, 0.0, 0.0])  # the RB press cut short closed nothing


@pytest.mark.timeout(30)
def test_a_lost_removal_event_is_caught_by_the_joystick_count(pad, clock, operators, monkeypatch, caplog):
    op = operators()
    pad.set_axis(LX, 1.0)
    assert act(op, clock) is not None
    get = pad.fake.module.event.get
    # A full SDL queue drops new events: here the JOYDEVICEREMOVED.
    monkeypatch.setattr(pad.fake.module.event, "get", lambda *a, **k: [e for e in get(*a, **k) if e.type != JOYDEVICEREMOVED])
    with caplog.at_level(logging.WARNING, logger="hilrl.hardware.gamepad"):
        pad.unplug()
        assert act(op, clock) is None
    assert not op.reader.connected and len(caplog.records) == 1
    pad.plug()
    assert act(op, clock) is None and op.reader.connected


@pytest.mark.timeout(30)
def test_unplugged_with_the_reader_thread_the_env_keeps_stepping_and_the_pad_comes_back(pad, monkeypatch, caplog):
    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    monkeypatch.delenv("SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS", raising=False)
    env = make_sim_env("reach")
    config = GamepadConfig(poll_hz=200, hold_s=0.0)
    wrapped = InterventionWrapper(env, GamepadOperator(config, env.config.action, backend=pad.fake.module))
    reader = wrapped.device.reader
    try:
        # Every pygame call happens in the reader's thread, with no window (SDL's dummy driver),
        # and the environment is left as it was.
        assert pad.fake.display_init_thread == "gamepad-reader" and pad.fake.video_driver_at_init == "dummy"
        assert pad.fake.background_events_at_init == "1" and "SDL_VIDEODRIVER" not in os.environ
        wrapped.reset(seed=0)
        policy = np.array([0.0, 0.0, 0.5], np.float32)
        pad.set_axis(LX, 1.0)
        wait_until(lambda: reader.latest() is not None and reader.latest().axes[LX] == 1.0)
        info = wrapped.step(policy)[4]
        assert info["intervened"] and info["action_taken"][0] == 1.0
        with caplog.at_level(logging.INFO, logger="hilrl.hardware.gamepad"):
            pad.unplug()
            wait_until(lambda: not reader.connected)
            for _ in range(10):
                _, _, terminated, truncated, info = wrapped.step(policy)
                assert not info["intervened"]
                np.testing.assert_array_equal(info["action_taken"], policy)
                if terminated or truncated:
                    wrapped.reset()
            warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
            assert len(warnings) == 1 and "policy acts" in warnings[0].getMessage()
            pad.plug()
            wait_until(lambda: reader.connected)
        pad.set_axis(LX, -1.0)
        wait_until(lambda: reader.latest() is not None and reader.latest().axes[LX] == -1.0)
        info = wrapped.step(policy)[4]
        assert info["intervened"] and info["action_taken"][0] == -1.0
        assert pad.fake.pump_threads == {"gamepad-reader"}
    finally:
        wrapped.close()
    assert not pad.fake.display_inited and not pad.fake.joystick_inited


# ---------------------------------------------------------------------------- config


@pytest.mark.timeout(30)
def test_config_errors_name_the_field():
    cases = [
        ({"deadzone": 1.0}, "deadzone"),
        ({"hold_s": -0.1}, "hold_s"),
        ({"poll_hz": 0.0}, "poll_hz"),
        ({"trigger_press": 1.0}, "trigger_press"),
        ({"joystick": -1}, "joystick"),
        ({"joystick": True}, "joystick"),
        ({"joystick": " "}, "joystick"),
        ({"trigger_axes": [2, 2]}, "trigger_axes"),
        ({"failure": Control(button=0)}, "failure uses button 0, already used by success"),
        ({"success_hold": Control(button=6)}, "success_hold uses button 6, already used by stop"),
    ]
    for kwargs, fragment in cases:
        with pytest.raises(ValueError, match=fragment):
            GamepadConfig(**kwargs)
    with pytest.raises(ValueError, match="scale"):
        AxisMapping(axis=0, scale=float("nan"))
    with pytest.raises(ValueError, match="axis"):
        AxisMapping(axis=-1)
    with pytest.raises(ValueError, match="exactly one of button and trigger"):
        Control(button=1, trigger=2)
    with pytest.raises(ValueError, match="exactly one of button and trigger"):
        Control()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("section, key", [
    ({"deadzone": 1.5}, "actor.intervention.gamepad.deadzone"),
    ({"x": {"axis": 0, "scale": 20}}, "actor.intervention.gamepad.x.scale"),
    ({"ry": {"hat_y": -1}}, "actor.intervention.gamepad.ry.hat_y"),
    ({"ry": {"hat": 0}}, "actor.intervention.gamepad.ry.hat"),
    ({"stop": {"button": 6, "trigger": 5}}, "actor.intervention.gamepad.stop.button"),
    ({"failure": {"button": 0}}, "actor.intervention.gamepad.failure"),
    ({"close_gripper": {"trigger": 4}}, "actor.intervention.gamepad.close_gripper"),
    ({"poll_hz": "fast"}, "actor.intervention.gamepad.poll_hz"),
    ({"deadzon": 0.1}, "actor.intervention.gamepad.deadzon"),
])
def test_yaml_errors_name_the_dotted_key(section, key):
    with pytest.raises(SchemaError) as err:
        from_dict(InterventionConfig, {"device": "gamepad", "gamepad": section}, "actor.intervention")
    assert err.value.key == key, str(err.value)


@pytest.mark.timeout(30)
def test_yaml_section_builds_the_device(pad, monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", pad.fake.module)
    section = {
        "device": "gamepad",
        "gamepad": {
            "joystick": "Xbox",
            "deadzone": 0.2,
            "z": {"axis": 4, "scale": -0.5},
            "close_gripper": {"trigger": 5},
            "open_gripper": {"button": 4},
            "success_hold": None,
        },
    }
    config = from_dict(InterventionConfig, section, "actor.intervention")
    assert config.gamepad.close_gripper == Control(trigger=5) and config.gamepad.success_hold is None
    assert config.gamepad.z == AxisMapping(axis=4, scale=-0.5)
    env = make_sim_env("reach")
    try:
        device = make_intervention_device(config, "reach", env)
        assert isinstance(device, GamepadOperator) and device.reader.threaded and device.reader.connected
        device.close()
    finally:
        env.close()
    assert InterventionConfig().gamepad == GamepadConfig()  # configs without the section keep loading
    assert from_dict(InterventionConfig, {"gamepad": {"joystick": 1}}, "actor.intervention").gamepad.joystick == 1


# ---------------------------------------------------------------------------- the tools


def _press_a_every_other_pump(pad) -> None:
    """A scripted operator (runs at each pump of the reader's thread): A pressed, released, ..."""
    if pad.buttons[A]:
        pad.release(A)
    else:
        pad.press(A)


@pytest.mark.timeout(120)
def test_record_demos_drives_with_the_gamepad_and_keeps_a_labelled_episode(pad, monkeypatch, tmp_path, capsys):
    from hilrl.tools.demos import OPERATOR_DEVICES, record_demos

    assert "gamepad" in OPERATOR_DEVICES
    monkeypatch.setitem(sys.modules, "pygame", pad.fake.module)
    doc = load_document(config_path("sim_reach"), ["actor.intervention.device=gamepad", "env.max_episode_steps=500"])
    pad.on_pump = _press_a_every_other_pump
    summary = record_demos(doc, 1, tmp_path / "demos", max_attempts=5, wait_for_input=False)
    assert summary["driver"] == "operator" and summary["device"] == "gamepad" and summary["episodes"] == 1
    assert "(labelled)" in capsys.readouterr().out  # kept because the operator pressed A
    assert pad.fake.pump_threads == {"gamepad-reader"}


@pytest.mark.timeout(120)
def test_record_labels_labels_frames_with_the_gamepads_success_hold_button(pad, monkeypatch, tmp_path):
    from hilrl.tools.labels import read_label_set, record_labels

    monkeypatch.setitem(sys.modules, "pygame", pad.fake.module)
    doc = load_document(config_path("sim_pick_cube"), ["actor.intervention.device=gamepad", "env.max_episode_steps=5"])
    doc["robot_server"]["sim"].update(image_height=32, image_width=32)
    doc["env"]["observation"]["cameras"] = [{"name": "front", "size": [32, 32], "role": "classifier"}]
    doc["reward_classifier"] = {"labels": {"max_negative_ratio": None, "steps_after_success": 0}}
    pad.press(Y)  # held the whole time: every frame shows success
    manifest = record_labels(doc, tmp_path / "labels", episodes=1, wait_for_input=False)
    assert manifest["label_source"] == "operator (gamepad): success held"
    labels = read_label_set(tmp_path / "labels").labels
    assert len(labels) == 6 and labels.all()  # the frame after the reset and one per step


# ---------------------------------------------------------------------------- the real pygame


@pytest.mark.timeout(60)
def test_real_pygame_in_the_dummy_video_driver_with_no_joystick_says_none_is_connected(monkeypatch):
    pygame = pytest.importorskip("pygame")
    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    try:
        reader = GamepadReader(GamepadConfig(), pygame)  # the real reader thread too
    except InputDeviceError as exc:
        if "could not initialise" in str(exc):
            pytest.skip(f"pygame cannot initialise here: {exc}")
        message = str(exc)
    else:
        reader.close()
        pytest.skip("a joystick is connected to this machine")
    assert "no joystick is connected (pygame.joystick.get_count() is 0)" in message
    assert "SDL_VIDEODRIVER" not in os.environ  # set for the initialisation only
    assert not pygame.display.get_init() and not pygame.joystick.get_init()  # quit what it started


def test_doctor_checks_the_gamepad_and_names_what_pygame_sees(monkeypatch):
    pygame = pytest.importorskip("pygame")
    del pygame
    from hilrl.tools.doctor import check_intervention_device
    from hilrl.transport.config import config_path, load_document

    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    rows = check_intervention_device(load_document(config_path("sim_reach"), ["actor.intervention.device=gamepad"]))
    assert [r.name for r in rows] == ["gamepad"]
    if rows[0].ok:
        pytest.skip("a joystick is connected to this machine")
    assert "no joystick is connected" in rows[0].detail or "could not initialise" in rows[0].detail, rows
