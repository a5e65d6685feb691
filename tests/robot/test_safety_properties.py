"""Adversarial property tests of the robot server's safety envelope, with hypothesis: random
sequences of every request kind (extreme, NaN and inf values, wrong shapes, repeated and
out-of-order requests, go-home with any noise, impedance changes, stops and clear-errors at any
moment, idle gaps long enough for the watchdog) against the service with the sim backend and with
the Franka backend on the dynamic fake panda-py. After every request and every few milliseconds
of every gap the invariants of `safety_harness` hold (box, speed, reference, hold, latch, refused).

Failing examples are shrunk by hypothesis; the ones found while building this are kept below as
explicit regression examples (`@example`).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from safety_harness import (
    SAFETY,
    FrankaCell,
    SimCell,
    Tracker,
    Wait,
    _impedance,
    _unchecked,
    sequences,
)

from hilrl.transport.robot_messages import (
    ClearErrors,
    GoHome,
    SetGripper,
    SetImpedance,
    SetPoseTarget,
    Stop,
)

pytestmark = pytest.mark.timeout(600)

PROFILE = settings(
    max_examples=250, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow],
)

# Regression examples (shrunk by hypothesis, or the reproductions).
STIFF_FAR_TARGET = [SetImpedance(_impedance({"translational_stiffness_n_per_m": 3000.0,
                                             "translational_damping_ns_per_m": 20.0, "translational_clip_m": 0.02})),
                    _unchecked(SetPoseTarget, position_m=np.array([0.6, 0.2, 0.35]), quaternion_wxyz=np.array([0.0, 1, 0, 0])),
                    Wait(0.4)]
HOSTILE_IMPEDANCE = [SetImpedance(_impedance({"translational_clip_m": 10.0, "translational_stiffness_n_per_m": 1e7})),
                     _unchecked(SetPoseTarget, position_m=np.array([0.6, 0.2, 0.35]), quaternion_wxyz=np.array([0.0, 1, 0, 0])),
                     Wait(0.3)]
NAN_IMPEDANCE = [SetImpedance(_impedance({"translational_damping_ns_per_m": math.nan})), Wait(0.1)]
BIG_NOISE = [_unchecked(GoHome, position_noise_m=0.5, rotation_noise_rad=5.0, seed=3), Wait(0.1)]
STOP_THEN_MOVE = [Stop(reason="x"), _unchecked(SetPoseTarget, position_m=np.array([0.5, 0.1, 0.2]),
                                                 quaternion_wxyz=np.array([0.0, 1, 0, 0])), Wait(0.2), ClearErrors()]
# Found by bench/safety.py on the Franka: a clip lowered while the arm moves left panda-py's
# reference 2 mm from the TCP (clip 1 mm) until the reference thread's next tick.
CLIP_LOWERED_IN_MOTION = [SetImpedance(_impedance({"translational_clip_m": 0.02})),
                          _unchecked(SetPoseTarget, position_m=np.array([0.45, 0.15, 0.45]),
                                     quaternion_wxyz=np.array([0.0, 1, 0, 0])),
                          Wait(0.1), SetImpedance(_impedance({"translational_clip_m": 0.001})), Wait(0.05)]
# Found by the property tests: an in-process SetGripper(NaN) reached the finger actuators and the
# simulation diverged (MuJoCo reset it and latched physics_diverged).
NAN_GRIPPER = [_unchecked(SetGripper, opening=math.nan), Wait(0.2)]
STALLED_CLIENT = [_unchecked(SetPoseTarget, position_m=np.array([0.6, -0.2, 0.1]), quaternion_wxyz=np.array([0.0, 1, 0, 0])),
                  Wait(0.4)]


def check_sequence(cell, sequence) -> None:
    """Run one sequence from a fresh start; every invariant must hold throughout."""
    cell.reset()
    tracker = Tracker(cell)
    tracker.run(sequence)
    assert tracker.violations == [], "\n".join(tracker.violations)


@pytest.fixture(scope="module")
def sim_cell():
    cell = SimCell()
    yield cell
    cell.close()


@PROFILE
@given(sequence=sequences)
@example(sequence=STIFF_FAR_TARGET)
@example(sequence=HOSTILE_IMPEDANCE)
@example(sequence=NAN_IMPEDANCE)
@example(sequence=BIG_NOISE)
@example(sequence=STOP_THEN_MOVE)
@example(sequence=STALLED_CLIENT)
@example(sequence=NAN_GRIPPER)
def test_sim_backend_keeps_every_invariant(sim_cell, sequence):
    check_sequence(sim_cell, sequence)


@pytest.fixture(scope="module")
def franka_cell(fake_panda_py):
    cell = FrankaCell()
    yield cell
    cell.close()


@settings(PROFILE, max_examples=150)
@given(sequence=sequences)
@example(sequence=CLIP_LOWERED_IN_MOTION)
@example(sequence=STIFF_FAR_TARGET)
@example(sequence=HOSTILE_IMPEDANCE)
@example(sequence=BIG_NOISE)
@example(sequence=STOP_THEN_MOVE)
@example(sequence=STALLED_CLIENT)
def test_franka_backend_on_the_dynamic_fake_keeps_every_invariant(franka_cell, sequence):
    check_sequence(franka_cell, sequence)


def test_the_harness_catches_a_broken_speed_cap():
    """The invariants can fail: with the speed cap effectively disabled (the reference jumps to
    the target at once and may lead the TCP without bound), a stiff controller and a far target
    break the speed invariant."""
    cell = SimCell(safety=SAFETY)
    try:
        backend = cell.service.backend
        backend.reference.max_speed_m_per_s = 1e9
        backend.reference.max_accel_m_per_s2 = 1e12
        backend.controller.max_lead_m = math.inf
        tracker = Tracker(cell)
        tracker.run(STIFF_FAR_TARGET)
        assert any("speed" in v for v in tracker.violations), tracker.violations
    finally:
        cell.close()
