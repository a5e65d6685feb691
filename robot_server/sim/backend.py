"""The simulated arm: MuJoCo physics + the impedance controller at every physics step.

`SimBackend` implements `robot_server.backend.ArmBackend`. It does not know about clocks: the
server calls `advance(duration_s)` either once per `Advance` request (lockstep) or continuously to
follow the wall clock (realtime). Physics steps use MuJoCo's split step (mj_step1, controller,
mj_step2) so the controller sees the kinematics of the current step without a second forward pass.

Controller errors (as a real arm's reflexes would raise them) are latched here and cleared only
by `clear_errors`: a joint at its limit ("joint_limit") and a non-finite physics state
("physics_diverged", which also resets the arm to home so the simulation stays usable).
"""

from __future__ import annotations

import logging
import os

import mujoco
import numpy as np

from hilrl.robot_server.config import ServerConfig, SimConfig
from hilrl.robot_server.safety import SafetyConfig, SpeedLimiter, lead_limits
from hilrl.robot_server.sim.controller import ImpedanceController
from hilrl.robot_server.sim.scene import (
    FINGER_STROKE_M,
    JOINT_LIMITS_RAD,
    N_ARM_JOINTS,
    READY_POSTURE_RAD,
    SceneSpec,
    build_mjcf,
)
from hilrl.robot_server.sim.tasks import make_task
from hilrl.transport.robot_messages import ImpedanceParams, RobotState
from hilrl.transport.spatial import quat_normalize

log = logging.getLogger(__name__)

CAMERAS = ("front", "wrist")
_JOINT_LIMIT_MARGIN_RAD = 0.005
_LIMIT_LOW_RAD = JOINT_LIMITS_RAD[:, 0] + _JOINT_LIMIT_MARGIN_RAD
_LIMIT_HIGH_RAD = JOINT_LIMITS_RAD[:, 1] - _JOINT_LIMIT_MARGIN_RAD
# Warnings MuJoCo raises when it resets a diverged simulation (or zeroes non-finite controls).
_UNSTABLE_WARNINGS = (
    mujoco.mjtWarning.mjWARN_BADQPOS,
    mujoco.mjtWarning.mjWARN_BADQVEL,
    mujoco.mjtWarning.mjWARN_BADQACC,
    mujoco.mjtWarning.mjWARN_BADCTRL,
)
_SETTLE_AFTER_RESET_S = 0.1  # lets objects come to rest on the table after placement


class SimBackend:
    """Simulated Panda-like arm with a parallel gripper, for one task.

    Args:
        task: "reach", "pick_cube" or "peg_insert".
        impedance: controller parameters.
        sim: physics step and camera size.
        control_period_s: one control period, reported to clients.
    """

    name = "sim"
    realtime_only = False
    cameras = CAMERAS

    def __init__(
        self,
        task: str,
        impedance: ImpedanceParams | None = None,
        sim: SimConfig | None = None,
        control_period_s: float = 0.1,
        max_tcp_speed_m_per_s: float = SafetyConfig.max_tcp_speed_m_per_s,
        max_tcp_angular_speed_rad_per_s: float = SafetyConfig.max_tcp_angular_speed_rad_per_s,
    ):
        self.sim_config = sim or SimConfig()
        self.control_period_s = control_period_s
        spec = SceneSpec(task, self.sim_config.image_height, self.sim_config.image_width, self.sim_config.timestep_s)
        self.model = mujoco.MjModel.from_xml_string(build_mjcf(spec))
        self.data = mujoco.MjData(self.model)
        self.task_impl = make_task(task, self.model)
        self.task = task
        self.controller = ImpedanceController(impedance or ImpedanceParams(), N_ARM_JOINTS)

        m = self.model
        self._tcp = m.site("tcp").id
        self._fingers_qpos = [m.joint(f"finger_{s}").qposadr[0] for s in ("left", "right")]
        self._fingers_qvel = [m.joint(f"finger_{s}").dofadr[0] for s in ("left", "right")]
        self._finger_ctrl = [m.actuator(f"finger_{s}").id for s in ("left", "right")]
        self._jacp = np.zeros((3, m.nv))
        self._jacr = np.zeros((3, m.nv))
        self._jac = np.zeros((6, N_ARM_JOINTS))
        self._rng = np.random.default_rng()
        self._errors: list[str] = []
        self._pending_s = 0.0
        self._renderer: mujoco.Renderer | None = None

        self.home_position_m = np.array(self.task_impl.spec.home_position_m, dtype=np.float64)
        self.home_quaternion_wxyz = np.array(self.task_impl.spec.home_quaternion_wxyz, dtype=np.float64)
        self._home_q = self._solve_ik(self.home_position_m, self.home_quaternion_wxyz, READY_POSTURE_RAD)
        self._posture = self._home_q.copy()
        self.target_position_m = self.home_position_m.copy()
        self.target_quaternion_wxyz = self.home_quaternion_wxyz.copy()
        # The controller pulls towards this reference, which follows the target at most at the
        # speed caps (robot_server.safety): a far target or a stiff controller stays slow.
        self.reference = SpeedLimiter(
            max_tcp_speed_m_per_s, max_tcp_angular_speed_rad_per_s, self.home_position_m, self.home_quaternion_wxyz
        )
        self._set_lead_limits()
        self._gripper_cmd = 1.0
        self._resetting = False
        self.go_home(self.home_position_m, self.home_quaternion_wxyz, seed=0)

    # ------------------------------------------------------------------ kinematics helpers

    def _update_jacobian(self) -> None:
        mujoco.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self._tcp)
        self._jac[:3] = self._jacp[:, :N_ARM_JOINTS]
        self._jac[3:] = self._jacr[:, :N_ARM_JOINTS]

    def _tcp_quat(self) -> np.ndarray:
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, self.data.site_xmat[self._tcp])
        return quat_normalize(quat)

    def _solve_ik(self, position: np.ndarray, quat: np.ndarray, q_start: np.ndarray) -> np.ndarray:
        """Joint positions that put the TCP at (position, quat): damped least squares."""
        d = self.data
        d.qpos[:N_ARM_JOINTS] = q_start
        err = np.zeros(6)
        rot = np.zeros(3)
        neg = np.zeros(4)
        dq = np.zeros(4)
        for _ in range(200):
            mujoco.mj_kinematics(self.model, d)
            mujoco.mj_comPos(self.model, d)
            err[:3] = position - d.site_xpos[self._tcp]
            mujoco.mju_negQuat(neg, self._tcp_quat())
            mujoco.mju_mulQuat(dq, quat, neg)
            mujoco.mju_quat2Vel(rot, dq if dq[0] >= 0 else -dq, 1.0)
            err[3:] = rot
            if np.linalg.norm(err[:3]) < 1e-5 and np.linalg.norm(err[3:]) < 1e-4:
                break
            self._update_jacobian()
            j = self._jac
            step = j.T @ np.linalg.solve(j @ j.T + 1e-4 * np.eye(6), err)
            d.qpos[:N_ARM_JOINTS] = np.clip(d.qpos[:N_ARM_JOINTS] + step, *JOINT_LIMITS_RAD.T)
        else:
            log.warning("IK did not converge for TCP pose %s %s (residual %.4f m)", position, quat, np.linalg.norm(err[:3]))
        return d.qpos[:N_ARM_JOINTS].copy()

    # ------------------------------------------------------------------ ArmBackend

    def set_target(self, position_m: np.ndarray, quaternion_wxyz: np.ndarray) -> None:
        self.target_position_m = np.array(position_m, dtype=np.float64)
        self.target_quaternion_wxyz = quat_normalize(quaternion_wxyz)

    def hold(self) -> None:
        mujoco.mj_kinematics(self.model, self.data)
        self.target_position_m = self.data.site_xpos[self._tcp].copy()
        self.target_quaternion_wxyz = self._tcp_quat()
        self.reference.reset(self.target_position_m, self.target_quaternion_wxyz)

    def _set_lead_limits(self) -> None:
        c, r = self.controller, self.reference
        c.max_lead_m, c.max_lead_rad = lead_limits(c.params, r.max_speed_m_per_s, r.max_angular_speed_rad_per_s)

    def set_gripper(self, opening: float) -> None:
        self._gripper_cmd = float(np.clip(opening, 0.0, 1.0))
        for a in self._finger_ctrl:
            self.data.ctrl[a] = self._gripper_cmd * FINGER_STROKE_M

    def set_impedance(self, params: ImpedanceParams) -> None:
        self.controller.set_params(params)
        self._set_lead_limits()

    def clear_errors(self) -> None:
        if self._errors:
            log.info("clearing controller errors on request: %s", self._errors)
        self._errors = []

    def go_home(self, position_m: np.ndarray, quaternion_wxyz: np.ndarray, seed: int | None) -> None:
        """Reset the scene with the arm at the start pose the service chose (home, or a randomised
        start already clipped to the box): the sim places the arm there (IK), it does not drive
        it; `seed` seeds the task's object placement."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        rng = self._rng
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        position = np.array(position_m, dtype=np.float64)
        quat = quat_normalize(quaternion_wxyz)
        q = self._solve_ik(position, quat, self._home_q)
        d.qpos[:N_ARM_JOINTS] = q
        self._posture = self._home_q.copy()
        self.task_impl.reset(d, rng)
        opening = self.task_impl.spec.gripper_opening_at_home
        for adr in self._fingers_qpos:
            d.qpos[adr] = opening * FINGER_STROKE_M
        d.qvel[:] = 0.0
        self.set_gripper(opening)
        mujoco.mj_forward(m, d)
        self.target_position_m = position
        self.target_quaternion_wxyz = quat
        self.reference.reset(position, quat)
        self._pending_s = 0.0
        self._resetting = True
        try:
            self._step(int(round(_SETTLE_AFTER_RESET_S / m.opt.timestep)))
        finally:
            self._resetting = False
        d.time = 0.0

    def advance(self, duration_s: float) -> None:
        """Run physics for `duration_s`; fractions of a step carry over to the next call."""
        self._pending_s += duration_s
        n = int(self._pending_s / self.model.opt.timestep + 1e-9)
        self._pending_s -= n * self.model.opt.timestep
        self._step(n)

    def _step(self, n: int) -> None:
        m, d = self.model, self.data
        ctrl = self.controller
        q = d.qpos[:N_ARM_JOINTS]  # a view: follows every step
        at_limit: np.ndarray | None = None
        reference = self.reference
        timestep_s = m.opt.timestep
        for _ in range(n):
            reference.step(self.target_position_m, self.target_quaternion_wxyz, timestep_s)
            mujoco.mj_step1(m, d)
            self._update_jacobian()
            d.ctrl[:N_ARM_JOINTS] = ctrl.torques(
                self._jac,
                d.site_xpos[self._tcp],
                d.site_xmat[self._tcp],
                d.qpos[:N_ARM_JOINTS],
                d.qvel[:N_ARM_JOINTS],
                d.qfrc_bias[:N_ARM_JOINTS],
                reference.position_m,
                reference.quaternion_wxyz,
                self._posture,
            )
            mujoco.mj_step2(m, d)
            # Checked at every physics step, like the real arm's reflexes: a limit touched and
            # left within one control period must latch whatever the clock (lockstep advances a
            # whole period per call).
            if at_limit is None and ((q < _LIMIT_LOW_RAD).any() or (q > _LIMIT_HIGH_RAD).any()):
                at_limit = q.copy()
        if n:
            self._check_errors(at_limit)

    def _check_errors(self, at_limit: np.ndarray | None = None) -> None:
        d = self.data
        # MuJoCo resets the data itself (and counts a warning) when the state blows up, so a
        # diverged simulation is usually finite again by the time we look: check both.
        unstable = any(d.warning[w].number for w in _UNSTABLE_WARNINGS)
        if unstable or not (np.isfinite(d.qpos).all() and np.isfinite(d.qvel).all()):
            self._latch("physics_diverged: simulation state became non-finite; arm reset to home")
            if self._resetting:  # diverged while settling at home: never recurse into another reset
                log.error("physics diverged while resetting; the arm stays where the reset put it")
                return
            log.error("physics diverged; resetting the arm to home")
            self.go_home(self.home_position_m, self.home_quaternion_wxyz, None)
            return
        q = d.qpos[:N_ARM_JOINTS] if at_limit is None else at_limit
        low = q < _LIMIT_LOW_RAD
        high = q > _LIMIT_HIGH_RAD
        for j in np.flatnonzero(low | high):
            self._latch(f"joint_limit: joint {j + 1} at {q[j]:.3f} rad")

    def _latch(self, error: str) -> None:
        kind = error.split(":", 1)[0]
        if not any(e.startswith(kind) for e in self._errors):
            log.error("controller error: %s", error)
            self._errors.append(error)
            self.hold()

    def state(self) -> RobotState:
        m, d = self.model, self.data
        # mj_forward refreshes kinematics and the constraint forces at the current state; saving
        # the warm start keeps the trajectory independent of how often the state is read.
        warm = d.qacc_warmstart.copy()
        mujoco.mj_forward(m, d)
        d.qacc_warmstart[:] = warm
        self._update_jacobian()
        j = self._jac
        qd = d.qvel[:N_ARM_JOINTS]
        twist = j @ qd
        # External wrench as the real arm estimates it: joint torques from contacts mapped through
        # the Jacobian's transpose pseudo-inverse.
        tau_ext = d.qfrc_constraint[:N_ARM_JOINTS] - self._joint_limit_torques()
        wrench = np.linalg.solve(j @ j.T + 1e-6 * np.eye(6), j @ tau_ext)
        width = sum(d.qpos[a] for a in self._fingers_qpos)
        return RobotState(
            robot_time_s=float(d.time),
            tcp_position_m=d.site_xpos[self._tcp].copy(),
            tcp_quaternion_wxyz=self._tcp_quat(),
            tcp_linear_velocity_m_per_s=twist[:3].copy(),
            tcp_angular_velocity_rad_per_s=twist[3:].copy(),
            tcp_force_n=wrench[:3].copy(),
            tcp_torque_nm=wrench[3:].copy(),
            joint_positions_rad=d.qpos[:N_ARM_JOINTS].copy(),
            joint_velocities_rad_per_s=qd.copy(),
            gripper_opening=float(np.clip(width / (2 * FINGER_STROKE_M), 0.0, 1.0)),
            target_position_m=self.target_position_m.copy(),
            target_quaternion_wxyz=self.target_quaternion_wxyz.copy(),
            status="error" if self._errors else "ok",
            errors=list(self._errors),
            task_success=self.task_impl.success(d),
            object_state=self.task_impl.object_state(d).astype(np.float64),
        )

    def _joint_limit_torques(self) -> np.ndarray:
        """Constraint torques from joint limits (not an external force at the TCP)."""
        d = self.data
        forces = np.where(d.efc_type == mujoco.mjtConstraint.mjCNSTR_LIMIT_JOINT, d.efc_force, 0.0)
        tau = np.zeros(self.model.nv)
        if forces.any():
            mujoco.mj_mulJacTVec(self.model, d, tau, forces)
        return tau[:N_ARM_JOINTS]

    def render(self, cameras: list[str]) -> tuple[np.ndarray, float]:
        unknown = [c for c in cameras if c not in CAMERAS]
        if unknown:
            raise ValueError(f"unknown camera(s) {unknown}; this sim has {list(CAMERAS)}")
        if self._renderer is None:
            try:
                self._renderer = mujoco.Renderer(self.model, self.sim_config.image_height, self.sim_config.image_width)
            except Exception as exc:
                raise RuntimeError(
                    f"cannot create a MuJoCo renderer (MUJOCO_GL={os.environ.get('MUJOCO_GL', 'unset')}): {exc}. "
                    "Headless machines need MUJOCO_GL=egl and the EGL library (Debian/Ubuntu: "
                    "apt-get install libegl1 libgl1)."
                ) from exc
            # Headless machines render with Mesa's software EGL, where shadow maps cost ~25 ms a
            # frame and reflections more; the policy gains little from either.
            self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_camlight(self.model, self.data)
        frames = np.empty((len(cameras), self.sim_config.image_height, self.sim_config.image_width, 3), np.uint8)
        for i, name in enumerate(cameras):
            self._renderer.update_scene(self.data, camera=name)
            frames[i] = self._renderer.render()
        return frames, float(self.data.time)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def make_backend(config: ServerConfig, task: str) -> SimBackend:
    """The sim backend for a server config."""
    s = config.safety
    return SimBackend(task, config.impedance, config.sim, config.control_period_s,
                      s.max_tcp_speed_m_per_s, s.max_tcp_angular_speed_rad_per_s)
