"""Adversarial request sequences against a robot service, and the safety invariants checked after
every request (used by test_safety_properties.py and bench/safety.py).

A `Cell` is one `RobotService` over one backend with a clock the harness controls: the simulated
arm on the realtime clock driven by a fake clock (physics advances exactly as the harness waits,
so the watchdog is exercised, and nothing depends on the machine's speed), or the Franka backend
on the dynamic fake panda-py (wall clock; the harness sleeps). Requests go to `service.handle`
directly, as hand-built messages: nothing on a client side helps, and values the wire would
refuse (NaN, inf, wrong shapes) reach the safety layer too.

Invariants after every request and every wait (`Tracker.check`):

    box        the measured TCP lies inside the workspace box + BOX_TOLERANCE_M
    speed      the measured TCP speed <= max_tcp_speed_m_per_s + SPEED_TOLERANCE_M_PER_S
    reference  the controller's reference lies within one impedance clip (+1 mm) of the measured
               pose (the Franka: what panda-py pulls towards; the sim clips inside its controller)
    hold       once watchdog_timeout_s + one control period have passed since the last accepted
               motion command, the arm holds (status "holding" or an error latched)
    latch      an error once latched (operator_stop, force_limit, a reflex) stays in every state
               until a ClearErrors reply no longer shows it
    refused    no SetPoseTarget, SetGripper, GoHome or SetImpedance is accepted while latched
    stable     the simulation never diverges (no request may make the physics unstable)
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st

from hilrl.robot_server.config import ServerConfig
from hilrl.robot_server.safety import SafetyConfig
from hilrl.robot_server.service import PhysicsPacer, RobotService
from hilrl.transport.robot_messages import (
    Ack,
    ClearErrors,
    ErrorReply,
    GetState,
    GoHome,
    ImpedanceParams,
    RobotState,
    SetGripper,
    SetImpedance,
    SetPoseTarget,
    Stop,
)

BOX_TOLERANCE_M = 0.01  # the arm may overshoot a target at the box wall by a little (and contact)
SPEED_TOLERANCE_M_PER_S = 0.05  # the arm lags and may overshoot its capped reference a little
REFERENCE_TOLERANCE_M = 0.001
MOTION = (SetPoseTarget, SetGripper, GoHome, SetImpedance)

SAFETY = SafetyConfig(workspace_min_m=(0.35, -0.2, 0.08), workspace_max_m=(0.6, 0.2, 0.35))
"""The sim cell's limits: a box around the sim tasks' home poses."""
FRANKA_SAFETY = SafetyConfig(workspace_min_m=(0.2, -0.2, 0.3), workspace_max_m=(0.5, 0.2, 0.6))
"""The Franka cell's: a box around the fake arm's ready pose (0.307, 0, 0.487)."""


# ---------------------------------------------------------------------------- requests


def _unchecked(cls: type, **values: Any) -> Any:
    """A message built without its __post_init__ checks (what an in-process caller could pass)."""
    msg = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(msg, name, value)
    return msg


floats = st.one_of(
    st.floats(-2.0, 2.0, allow_nan=False),
    st.sampled_from([0.0, 1e-9, -1e-9, 1e6, -1e6, 1e300, math.inf, -math.inf, math.nan]),
)
positions = st.one_of(
    st.tuples(st.floats(0.1, 0.8), st.floats(-0.4, 0.4), st.floats(-0.1, 0.8)),  # near the boxes
    st.tuples(floats, floats, floats),  # anything
)
quaternions = st.one_of(
    st.just((0.0, 1.0, 0.0, 0.0)),  # the sim's and the fake's gripper-down home orientation
    st.tuples(floats, floats, floats, floats),
)


def _impedance(values: dict[str, float]) -> Any:
    base = dataclasses.asdict(ImpedanceParams())
    base.update(values)
    return _unchecked(ImpedanceParams, **base)


impedances = st.one_of(
    st.builds(lambda k, d, c: _impedance({"translational_stiffness_n_per_m": k, "translational_damping_ns_per_m": d,
                                          "translational_clip_m": c}),
              st.floats(0, 3000), st.floats(20, 200), st.floats(0.001, 0.02)),  # inside the limits
    st.builds(lambda name, value: _impedance({name: value}),
              st.sampled_from(list(dataclasses.asdict(ImpedanceParams()))), floats),  # anything
)


@dataclass(frozen=True)
class Wait:
    """Let time pass with no request (s)."""

    seconds: float


def _target(position, quaternion) -> Any:
    return _unchecked(SetPoseTarget, position_m=np.array(position, dtype=float),
                      quaternion_wxyz=np.array(quaternion, dtype=float))


# Mostly plausible targets near (and beyond) the boxes, so the arm really moves and presses on
# the walls; the rest is anything.
near_targets = st.builds(_target, st.tuples(st.floats(0.1, 0.8), st.floats(-0.4, 0.4), st.floats(-0.1, 0.8)),
                         st.one_of(st.just((0.0, 1.0, 0.0, 0.0)),
                                   st.tuples(st.floats(-0.3, 0.3), st.floats(0.7, 1.0), st.floats(-0.3, 0.3),
                                             st.floats(-0.3, 0.3))))
# Weights by repetition (one_of picks a branch uniformly): mostly motion and time, a stop now and
# then (it freezes the rest of the sequence until a clear).
requests = st.one_of(
    *[near_targets] * 8,
    st.builds(Wait, st.floats(0.0, 0.05)),
    st.builds(Wait, st.floats(0.0, 0.05)),
    st.just(ClearErrors()),
    st.builds(_target, positions, quaternions),
    st.builds(lambda p: _unchecked(SetPoseTarget, position_m=np.array(p), quaternion_wxyz=np.zeros((2, 2))),
              positions),  # a wrong shape
    st.builds(lambda o: _unchecked(SetGripper, opening=o), floats),
    st.builds(lambda n, r, s: _unchecked(GoHome, position_noise_m=n, rotation_noise_rad=r, seed=s),
              st.one_of(st.floats(0, 0.06), floats), st.one_of(st.floats(0, 0.35), floats),
              st.one_of(st.none(), st.integers(0, 2**31))),
    st.builds(lambda p: SetImpedance(params=p), impedances),
    st.just(ClearErrors()),
    st.builds(lambda r: Stop(reason=r), st.text(max_size=20)),
    st.just(GetState()),
    st.builds(Wait, st.floats(0.0, 0.4)),
    st.builds(Wait, st.floats(0.0, 0.05)),
)
sequences = st.lists(requests, min_size=10, max_size=60)


# ---------------------------------------------------------------------------- cells


class Cell:
    """One service and its backend, with the harness's clock. Subclasses: SimCell, FrankaCell."""

    service: RobotService
    config: ServerConfig

    def now(self) -> float:
        raise NotImplementedError

    def request(self, msg: Any) -> Any:
        return self.service.handle(msg, self.now())

    def wait(self, seconds: float, on_sample: Callable[[], None]) -> None:
        """Let `seconds` pass, calling `on_sample` every control period or so."""
        raise NotImplementedError

    def state(self) -> RobotState:
        return self.service.handle(GetState(), self.now())

    def reference_lead_m(self) -> float | None:
        """Largest per-axis distance of the controller's reference from the measured TCP, if the
        backend has such a reference; and the clip it must stay within."""
        return None

    def reset(self) -> None:
        """Between sequences: clear, home, default impedance."""
        self.service.handle(ClearErrors(), self.now())
        self.service.handle(SetImpedance(self.config.impedance), self.now())
        self.service.handle(GoHome(), self.now())

    def close(self) -> None:
        self.service.backend.close()


class SimCell(Cell):
    """The MuJoCo arm on the realtime clock, paced by a fake clock the harness advances."""

    def __init__(self, task: str = "pick_cube", safety: SafetyConfig = SAFETY):
        from hilrl.robot_server.sim.backend import make_backend

        self.config = ServerConfig(clock="realtime", safety=safety)
        self.service = RobotService(make_backend(self.config, task), self.config)
        self._t = 0.0
        self.pacer = PhysicsPacer(self.service, self.config.sim.timestep_s, max_catch_up_s=1.0)
        self.pacer.catch_up(self._t)

    def now(self) -> float:
        return self._t

    def request(self, msg: Any) -> Any:
        self._t += 0.002  # a request takes a little time
        self.pacer.catch_up(self._t)
        return self.service.handle(msg, self._t)

    def wait(self, seconds: float, on_sample: Callable[[], None]) -> None:
        end = self._t + seconds
        while self._t < end:
            self._t = min(end, self._t + 0.02)
            self.pacer.catch_up(self._t)
            on_sample()


class FrankaCell(Cell):
    """The Franka backend on the dynamic fake panda-py (tests/robot/fake_panda_py on sys.path),
    on the wall clock."""

    def __init__(self, safety: SafetyConfig = FRANKA_SAFETY):
        from hilrl.robot_server.config import FrankaConfig
        from hilrl.robot_server.franka.backend import FrankaBackend

        self.config = ServerConfig(backend="franka", clock="realtime", safety=safety,
                                   franka=FrankaConfig(hostname="fake-robot", realtime="ignore", gripper="none"))
        self.backend = FrankaBackend(self.config)
        self.service = RobotService(self.backend, self.config)

    def now(self) -> float:
        return time.monotonic()

    def request(self, msg: Any) -> Any:
        reply = self.service.handle(msg, self.now())
        self.service.tick(self.now())
        return reply

    def wait(self, seconds: float, on_sample: Callable[[], None]) -> None:
        end = time.monotonic() + seconds
        while (now := time.monotonic()) < end:
            time.sleep(min(0.01, end - now))
            self.service.tick(time.monotonic())
            on_sample()

    def reference_lead_m(self) -> float | None:
        ctrl = self.backend.panda.controller
        if ctrl is None:
            return None
        position, _ = ctrl.reference()
        measured = self.backend.panda.get_position()
        return float(np.abs(position - measured).max())


# ---------------------------------------------------------------------------- invariants


@dataclass
class Tracker:
    """What the invariants need to remember across a sequence, and the worst figures seen."""

    cell: Cell
    requests: int = 0
    last_motion_s: float | None = None
    latched: set[str] = field(default_factory=set)
    max_box_excursion_m: float = 0.0
    max_speed_m_per_s: float = 0.0
    max_reference_lead_m: float = 0.0
    max_hold_latency_ms: float = 0.0
    violations: list[str] = field(default_factory=list)
    _hold_seen: bool = False

    def _fail(self, what: str) -> None:
        self.violations.append(what)

    def check(self, state: RobotState, context: str) -> None:
        """The state invariants on a measured state."""
        safety = self.cell.config.safety
        position = np.asarray(state.tcp_position_m)
        outside = float(np.max(np.concatenate([np.asarray(safety.workspace_min_m) - position,
                                               position - np.asarray(safety.workspace_max_m), [0.0]])))
        self.max_box_excursion_m = max(self.max_box_excursion_m, outside)
        if outside > BOX_TOLERANCE_M:
            self._fail(f"{context}: TCP {position.round(4).tolist()} is {outside * 1000:.1f} mm outside the box")
        speed = float(np.linalg.norm(state.tcp_linear_velocity_m_per_s))
        self.max_speed_m_per_s = max(self.max_speed_m_per_s, speed)
        if speed > safety.max_tcp_speed_m_per_s + SPEED_TOLERANCE_M_PER_S:
            self._fail(f"{context}: TCP speed {speed:.3f} m/s over the cap {safety.max_tcp_speed_m_per_s}")
        lead = self.cell.reference_lead_m()
        if lead is not None:
            self.max_reference_lead_m = max(self.max_reference_lead_m, lead)
            clip = self.cell.service.backend._params.translational_clip_m  # the clip in force
            if lead > clip + REFERENCE_TOLERANCE_M:
                self._fail(f"{context}: reference {lead * 1000:.1f} mm from the TCP, clip {clip * 1000:.1f} mm")
        if any(e.startswith("physics_diverged") for e in state.errors):
            self._fail(f"{context}: the simulation diverged (a request made the physics unstable)")
        for error in self.latched:
            if error not in state.errors:
                self._fail(f"{context}: latched {error!r} vanished without clear_errors")
        self.latched |= {e for e in state.errors if not e.startswith("gripper")}
        if self.last_motion_s is not None and state.status != "error":
            idle_s = self.cell.now() - self.last_motion_s
            if state.status == "holding":
                if not self._hold_seen:  # the first state that shows the watchdog's hold
                    self._hold_seen = True
                    self.max_hold_latency_ms = max(self.max_hold_latency_ms, idle_s * 1e3)
            elif idle_s > safety.watchdog_timeout_s + self.cell.config.control_period_s:
                self._fail(f"{context}: {idle_s:.2f} s after the last command the arm is not holding")

    def apply(self, msg: Any) -> None:
        """Send one request (or wait) and check everything."""
        context = f"after {type(msg).__name__} #{self.requests}"
        if isinstance(msg, Wait):
            self.cell.wait(msg.seconds, lambda: self.check(self.cell.state(), context))
            return
        self.requests += 1
        latched_before = bool(self.latched) or bool(self.cell.state().errors)
        reply = self.cell.request(msg)
        accepted = isinstance(reply, (RobotState, Ack)) and not isinstance(reply, ErrorReply)
        if isinstance(msg, MOTION) and accepted and latched_before:
            self._fail(f"{context}: a {type(msg).__name__} was accepted while an error was latched")
        if isinstance(msg, SetPoseTarget) and accepted:
            self.last_motion_s = self.cell.now()
            self._hold_seen = False
        if isinstance(msg, (GoHome, Stop)) and accepted:
            self.last_motion_s = None  # at rest at home / holding: the watchdog re-arms on a target
        if isinstance(msg, ClearErrors) and isinstance(reply, RobotState):
            self.latched = {e for e in self.latched if e in reply.errors}
        self.check(self.cell.state(), context)

    def run(self, sequence: list[Any]) -> None:
        for msg in sequence:
            self.apply(msg)

    def figures(self) -> dict[str, float]:
        return {
            "max_box_excursion_m": round(self.max_box_excursion_m, 5),
            "max_tcp_speed_m_per_s": round(self.max_speed_m_per_s, 4),
            "max_reference_lead_m": round(self.max_reference_lead_m, 5),
            "max_hold_latency_ms": round(self.max_hold_latency_ms, 1),
        }
