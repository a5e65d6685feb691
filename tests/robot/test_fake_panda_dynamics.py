"""The fake panda-py's arm is dynamic enough to judge the franka backend by: it integrates the
Cartesian impedance law the controller is given (tests/robot/fake_panda_py/panda_py/__init__.py),
so stiffness, damping and the backend's reference clip show in speed, force and hold, and a
wrong setting makes a property fail.

- The law itself (manual clock, deterministic): a 1 cm step of the reference with the backend's
  default impedance settles without overshoot (a low damping ratio overshoots: the check can
  fail); the static deflection under an external wrench is F / K (and torque / k_r).
- Through the real `FrankaBackend` (real time, its own reference thread): with a far goal the
  re-centred reference makes the arm chase at K * clip / D, linear in K; a stiff controller is
  held under the speed cap instead; the arm holds against a push with F / K; pressing into a table
  the contact force stays K * clip.
- No controller: the arm brakes and does not move, whatever pushes on it.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from hilrl.robot_server.config import FrankaConfig, ServerConfig
from hilrl.robot_server.franka.backend import FrankaBackend, damping_ratio, impedance_matrix
from hilrl.transport.robot_messages import ImpedanceParams
from hilrl.transport.spatial import orientation_error, quat_mul, rotvec_to_quat

HOST = "172.16.0.2"
DEFAULT = ImpedanceParams()
K_T = DEFAULT.translational_stiffness_n_per_m  # 2000 N/m
D_T = DEFAULT.translational_damping_ns_per_m  # 89 N s/m
K_R = DEFAULT.rotational_stiffness_nm_per_rad  # 150 N m/rad
CLIP_M = DEFAULT.translational_clip_m  # 0.01 m


@pytest.fixture(autouse=True, scope="module")
def _use_the_fake(fake_panda_py):
    """Every test here runs against the fake panda-py (conftest.fake_panda_py)."""


class ManualClock:
    def __init__(self):
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def fake_arm(params: ImpedanceParams = DEFAULT, ratio: float | None = None):
    """(panda, controller, clock): a fake Panda on a manual clock running a CartesianImpedance
    built as the backend builds it, holding the start pose."""
    import panda_py

    panda = panda_py.Panda(HOST)
    clock = ManualClock()
    panda.set_clock(clock)
    ctrl = panda_py.controllers.CartesianImpedance(
        impedance=impedance_matrix(params),
        damping_ratio=damping_ratio(params, None) if ratio is None else ratio,
    )
    panda.start_controller(ctrl)
    return panda, ctrl, clock


def pose(panda) -> tuple[np.ndarray, np.ndarray]:
    return panda.get_position(), panda.get_orientation(scalar_first=True)


def xyzw(quat_wxyz: np.ndarray) -> np.ndarray:
    return np.array([quat_wxyz[1], quat_wxyz[2], quat_wxyz[3], quat_wxyz[0]])


def step_response(panda, clock, measure, duration_s: float = 1.0) -> np.ndarray:
    """`measure()` every 1 ms for `duration_s` of the manual clock."""
    samples = []
    for _ in range(int(round(duration_s * 1000))):
        clock.now_s += 0.001
        samples.append(measure())
    return np.array(samples)


def settle_time_s(response: np.ndarray, final: float, band: float) -> float:
    """When `response` (1 ms samples) last left final +- band * |final|."""
    outside = np.nonzero(np.abs(response - final) > band * abs(final))[0]
    return 0.0 if outside.size == 0 else (outside[-1] + 1) * 0.001


# ---------------------------------------------------------------------------------- the law


@pytest.mark.timeout(20)
def test_a_reference_step_settles_without_overshoot_and_a_low_damping_ratio_would_overshoot():
    step_m = 0.01
    overshoots = {}
    for ratio in (None, 0.2):  # None: the backend's ratio for the default impedance (0.995)
        panda, ctrl, clock = fake_arm(ratio=ratio)
        start, quat = pose(panda)
        ctrl.set_control(start + [step_m, 0.0, 0.0], xyzw(quat))
        x = step_response(panda, clock, lambda p=panda, s=start: p.get_position()[0] - s[0])
        overshoots[ratio] = (x.max() - step_m) / step_m
        if ratio is None:
            assert overshoots[ratio] < 0.10, overshoots
            assert settle_time_s(x, step_m, 0.02) < 0.2  # sqrt(K/m) = 45 rad/s: ~0.13 s to 2 %
            assert x[-1] == pytest.approx(step_m, abs=1e-6)
            np.testing.assert_allclose(panda.get_position()[1:], start[1:], atol=1e-12)
            print(f"\n1 cm step, ratio {ctrl.damping_ratio:.3f}: overshoot {overshoots[ratio]:.2%}, "
                  f"2% settle {settle_time_s(x, step_m, 0.02) * 1000:.0f} ms")
    assert overshoots[0.2] > 0.3, overshoots  # zeta 0.2: exp(-pi 0.2 / sqrt(1 - 0.04)) = 53 %

    # The orientation alike: a 0.05 rad step about z (k_r = 150 N m/rad, 2 kg m^2, same ratio).
    panda, ctrl, clock = fake_arm()
    start, quat = pose(panda)
    goal = quat_mul(rotvec_to_quat([0.0, 0.0, 0.05]), quat)
    ctrl.set_control(start, xyzw(goal))
    angle = step_response(panda, clock, lambda: orientation_error(pose(panda)[1], quat)[2], duration_s=2.0)
    assert (angle.max() - 0.05) / 0.05 < 0.10
    assert angle[-1] == pytest.approx(0.05, abs=1e-4)
    print(f"0.05 rad step: overshoot {(angle.max() - 0.05) / 0.05:.2%}, "
          f"2% settle {settle_time_s(angle, 0.05, 0.02) * 1000:.0f} ms")


@pytest.mark.timeout(20)
def test_static_deflection_under_an_external_wrench_is_force_over_stiffness():
    panda, ctrl, clock = fake_arm()
    start, quat = pose(panda)
    force_n = np.array([10.0, -6.0, 4.0])
    torque_nm = np.array([0.0, 0.0, 3.0])
    panda.external_wrench = np.concatenate([force_n, torque_nm])
    clock.now_s += 3.0  # integrated (2 s at most per catch-up: twice)
    panda.get_state()
    clock.now_s += 1.0
    state = panda.get_state()
    position, now_quat = pose(panda)
    deflection = position - start
    np.testing.assert_allclose(deflection, force_n / K_T, rtol=0.05)
    rotation = orientation_error(now_quat, quat)
    # The backend sends 2 k_r per unit of sin(angle / 2): k_r per radian for small angles.
    np.testing.assert_allclose(rotation[2], torque_nm[2] / K_R, rtol=0.05)
    np.testing.assert_allclose(state.O_F_ext_hat_K, panda.external_wrench)
    # At rest: the reported twist (dq through the zero Jacobian) is zero.
    assert np.abs(state.dq).max() < 1e-6
    errors = (deflection - force_n / K_T) / (force_n / K_T)
    print(f"\ndeflection {deflection} m vs F/K {force_n / K_T}: relative error {np.abs(errors).max():.1e}; "
          f"rotation {rotation[2]:.5f} rad vs {torque_nm[2] / K_R:.5f}")


@pytest.mark.timeout(20)
def test_without_a_controller_the_arm_brakes_and_does_not_move():
    import panda_py

    panda = panda_py.Panda(HOST)
    clock = ManualClock()
    panda.set_clock(clock)
    start = pose(panda)
    panda.external_wrench = np.array([50.0, 0.0, -30.0, 0.0, 5.0, 0.0])
    clock.now_s += 1.0
    state = panda.get_state()
    np.testing.assert_array_equal(pose(panda)[0], start[0])
    np.testing.assert_array_equal(pose(panda)[1], start[1])
    assert not any(state.dq)

    # Stopped mid-motion: the velocity is zero at once and the pose stays.
    panda.external_wrench = np.zeros(6)
    ctrl = panda_py.controllers.CartesianImpedance(impedance=impedance_matrix(DEFAULT),
                                                   damping_ratio=damping_ratio(DEFAULT, None))
    panda.start_controller(ctrl)
    ctrl.set_control(start[0] + [0.0, 0.02, 0.0], xyzw(start[1]))
    clock.now_s += 0.03
    assert panda.velocity[1] > 0.05
    panda.stop_controller()
    stopped = panda.get_position()
    assert not any(panda.get_state().dq)
    clock.now_s += 0.5
    np.testing.assert_array_equal(panda.get_position(), stopped)
    assert 0.0 < stopped[1] - start[0][1] < 0.02
    # A reflex brakes alike.
    ctrl = panda_py.controllers.CartesianImpedance(impedance=impedance_matrix(DEFAULT))
    panda.start_controller(ctrl)
    ctrl.set_control(stopped + [0.0, 0.0, 0.02], xyzw(start[1]))
    clock.now_s += 0.03
    panda.inject_reflex()
    tripped = panda.get_position()
    clock.now_s += 0.5
    np.testing.assert_array_equal(panda.get_position(), tripped)
    assert not any(panda.get_state().dq)


@pytest.mark.timeout(20)
def test_a_long_catch_up_is_bounded_and_an_unstable_setting_is_refused():
    panda, ctrl, clock = fake_arm()
    start, quat = pose(panda)
    ctrl.set_control(start + [0.01, 0.0, 0.0], xyzw(quat))
    clock.now_s += 100.0  # a test that slept long: 2 s simulated, the rest dropped and counted
    t0 = time.perf_counter()
    panda.get_state()
    assert time.perf_counter() - t0 < 1.0
    assert panda.dropped_catchups == 1 and panda.dropped_s == pytest.approx(98.0, abs=0.002)
    assert panda.get_position()[0] == pytest.approx(start[0] + 0.01, abs=1e-6)
    ctrl.set_impedance(np.diag([3e6, 3e6, 3e6, 10.0, 10.0, 10.0]))
    clock.now_s += 0.01
    with pytest.raises(ValueError, match="unstable"):
        panda.get_state()
    panda.mass_kg = 10.0  # the same stiffness on a heavier arm integrates
    panda.get_state()


# ---------------------------------------------------------------------------------- the backend


def backend_config() -> ServerConfig:
    return ServerConfig(backend="franka", clock="realtime", franka=FrankaConfig(hostname=HOST, gripper="none"))


@pytest.fixture
def backend():
    made: list[FrankaBackend] = []

    def build(config: ServerConfig | None = None) -> FrankaBackend:
        made.append(FrankaBackend(config or backend_config()))
        return made[-1]

    yield build
    for b in made:
        b.close()


def chase_speed(backend: FrankaBackend, distance_m: float = 1.0, settle_s: float = 0.3,
                window_s: float = 0.5) -> tuple[float, float]:
    """(speed from the displacement, mean reported speed) along x, m/s, over `window_s` after
    `settle_s` of chasing a goal `distance_m` away, in the robot's time."""
    start = backend.state()
    backend.set_target(start.tcp_position_m + [distance_m, 0.0, 0.0], start.tcp_quaternion_wxyz)
    time.sleep(settle_s)
    first = backend.state()
    reported = []
    while True:
        time.sleep(0.01)
        last = backend.state()
        reported.append(last.tcp_linear_velocity_m_per_s[0])
        if last.robot_time_s - first.robot_time_s >= window_s:
            break
    assert last.status == "ok", last.errors
    speed = (last.tcp_position_m[0] - first.tcp_position_m[0]) / (last.robot_time_s - first.robot_time_s)
    np.testing.assert_allclose(last.tcp_position_m[1:], start.tcp_position_m[1:], atol=1e-3)
    backend.hold()
    return speed, float(np.mean(reported))


@pytest.mark.timeout(30)
def test_the_chase_speed_is_stiffness_times_clip_over_damping_and_the_speed_cap_holds_a_stiff_arm(backend):
    arm = backend()
    speeds = {}
    # The default, then 4x softer with the same damping and clip (a damping ratio of 1.99: the
    # backend caps the ratio it derives at 2, so 10x softer would change D as well).
    for k in (K_T, K_T / 4):
        arm.set_impedance(replace(DEFAULT, translational_stiffness_n_per_m=k))
        # The median of three chases: the reference thread runs on the wall clock, and one chase
        # on a busy 2-core machine can catch a stalled thread.
        speed, reported = sorted((chase_speed(arm) for _ in range(3)), key=lambda m: m[0])[1]
        speeds[k] = speed
        ideal = k * CLIP_M / D_T
        # The re-centred reference makes the spring a constant force K * clip, against D v; the
        # error shrinks between the reference thread's updates (200 Hz), so a few % less.
        assert 0.8 * ideal < speed < 1.02 * ideal, (k, speed, ideal)
        assert reported == pytest.approx(speed, rel=0.05)  # the reported twist is the real speed
        print(f"\nK {k:.0f} N/m, D {D_T:.0f} N s/m: chase {speed:.4f} m/s (K clip / D = {ideal:.4f}), "
              f"reported {reported:.4f}")
    assert 3.3 < speeds[K_T] / speeds[K_T / 4] < 4.2, speeds  # linear in K

    # 10x stiffer (same damping and clip: K clip / D = 2.2 m/s; uncapped, the arm passes the 1 cm
    # clip within one 5 ms reference period and chases at ~1.1 m/s here): the speed cap holds it.
    # (Under the cap, not at it: with the reference's lead bounded to v_cap D / K = 1.1 mm and
    # D / K = 4.5 ms shorter than the reference period, the arm reaches each reference early and
    # averages ~0.15-0.17 m/s at 200 Hz.)
    cap = getattr(arm.safety, "max_tcp_speed_m_per_s", None)
    arm.set_impedance(replace(DEFAULT, translational_stiffness_n_per_m=10 * K_T))
    speed, reported = chase_speed(arm, distance_m=3.0)
    print(f"K {10 * K_T:.0f} N/m: chase {speed:.4f} m/s, reported {reported:.4f} (cap {cap} m/s)")
    assert reported == pytest.approx(speed, rel=0.05)
    if cap is None:  # a backend without a speed cap: the clip alone bounds the speed
        assert 3 * speeds[K_T] < speed < 10 * K_T * CLIP_M / D_T, speed  # measured ~1.1 m/s
    else:
        assert 0.4 * cap < speed < 1.03 * cap, (speed, cap)


@pytest.mark.timeout(20)
def test_the_backend_holds_against_a_push_with_force_over_stiffness(backend):
    arm = backend()
    start = arm.state()
    arm.hold()
    push_n = np.array([0.0, 12.0, -8.0])  # below K * clip = 20 N per axis: the reference stays put
    arm.panda.external_wrench = np.concatenate([push_n, np.zeros(3)])
    time.sleep(0.5)
    held = arm.state()
    np.testing.assert_allclose(held.tcp_position_m - start.tcp_position_m, [0.0, *(push_n[1:] / K_T)], rtol=0.05,
                               atol=1e-5)
    np.testing.assert_allclose(held.tcp_force_n, push_n)
    assert np.linalg.norm(held.tcp_linear_velocity_m_per_s) < 1e-3
    arm.panda.external_wrench = np.zeros(6)
    time.sleep(0.4)
    np.testing.assert_allclose(arm.state().tcp_position_m, start.tcp_position_m, atol=1e-5)


@pytest.mark.timeout(20)
def test_pressing_into_a_table_the_contact_force_stays_stiffness_times_clip(backend):
    arm = backend()
    start = arm.state()
    arm.panda.table_height_m = start.tcp_position_m[2] - 0.005
    arm.set_target(start.tcp_position_m - [0.0, 0.0, 0.05], start.tcp_quaternion_wxyz)  # 4.5 cm into it
    time.sleep(0.8)
    pressed = arm.state()
    assert pressed.status == "ok", pressed.errors
    # Without the clip the controller would push with K * 4.5 cm = 90 N.
    assert pressed.tcp_force_n[2] == pytest.approx(K_T * CLIP_M, rel=0.05), pressed.tcp_force_n
    assert pressed.tcp_position_m[2] < arm.panda.table_height_m
    print(f"\ncontact force {pressed.tcp_force_n[2]:.2f} N (K clip = {K_T * CLIP_M:.0f} N), "
          f"penetration {(arm.panda.table_height_m - pressed.tcp_position_m[2]) * 1000:.2f} mm")
