"""MJCF scene of the simulated cell, written here from primitive geoms (no downloaded assets).

The arm has the Franka Panda's kinematic chain (modified Denavit-Hartenberg parameters from the
manufacturer's datasheet), joint limits, torque limits and identified link masses; the gripper is a
parallel jaw with two slide joints (0-80 mm stroke) driven by force-limited position actuators.

Frames: the arm's base frame is the world frame, with the table top at z = 0. The TCP site sits
between the fingertips, 103.4 mm from the flange along the hand's z axis (pointing out of the hand).

Collision groups (contype/conaffinity bits) keep the model cheap and stable: arm links are visual
only; hand, fingers and a held peg collide with the table and task objects but not with each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Joint limits (rad) and torque limits (N m) of the Panda.
JOINT_LIMITS_RAD = np.array(
    [
        [-2.8973, 2.8973],
        [-1.7628, 1.7628],
        [-2.8973, 2.8973],
        [-3.0718, -0.0698],
        [-2.8973, 2.8973],
        [-0.0175, 3.7525],
        [-2.8973, 2.8973],
    ]
)
TORQUE_LIMITS_NM = np.array([87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0])
# The "ready" posture: elbow up, hand pointing down; IK for the home pose starts here.
READY_POSTURE_RAD = np.array([0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4])

FINGER_STROKE_M = 0.04  # per finger; full opening 80 mm
GRIPPER_FORCE_LIMIT_N = 40.0  # per finger
TCP_OFFSET_M = 0.1034  # flange -> TCP along the hand's z axis
N_ARM_JOINTS = 7

# Peg and hole geometry (peg_insert task): square peg, 1.5 mm radial clearance.
PEG_HALF_WIDTH_M = 0.0095
PEG_HALF_LENGTH_M = 0.04
PEG_BELOW_TCP_M = 0.03  # peg tip this far beyond the TCP along the hand's z axis
HOLE_HALF_WIDTH_M = PEG_HALF_WIDTH_M + 0.0015
HOLE_DEPTH_M = 0.04
CUBE_HALF_SIZE_M = 0.02

# Link inertials: mass (kg), centre of mass (m, link frame), diagonal inertia (kg m^2).
_LINK_INERTIA = [
    (4.970, (0.0039, 0.0021, -0.0476), (0.7034, 0.7066, 0.0091)),
    (0.646, (-0.0031, -0.0287, 0.0035), (0.0079, 0.0281, 0.0259)),
    (3.228, (0.0275, 0.0392, -0.0665), (0.0372, 0.0361, 0.0108)),
    (3.587, (-0.0532, 0.1044, 0.0275), (0.0259, 0.0195, 0.0283)),
    (1.226, (-0.0119, 0.0417, -0.1013), (0.0356, 0.0294, 0.0086)),
    (1.666, (0.0601, -0.0141, -0.0104), (0.0020, 0.0043, 0.0054)),
    (0.735, (0.0105, -0.0043, 0.0617), (0.0125, 0.0100, 0.0048)),
]
# Child body placement in the parent link frame (modified DH: a along x, then alpha about x, d
# along the new z), as (pos, quat wxyz).
_S = np.sqrt(0.5)
_LINK_FRAMES = [
    ((0, 0, 0.333), (1, 0, 0, 0)),
    ((0, 0, 0), (_S, -_S, 0, 0)),
    ((0, -0.316, 0), (_S, _S, 0, 0)),
    ((0.0825, 0, 0), (_S, _S, 0, 0)),
    ((-0.0825, 0.384, 0), (_S, -_S, 0, 0)),
    ((0, 0, 0), (_S, _S, 0, 0)),
    ((0.088, 0, 0), (_S, _S, 0, 0)),
]
# A visual capsule per link (from, to) in the link frame, radius 6 cm.
_LINK_CAPSULES = [
    ((0, 0, -0.19), (0, 0, 0)),
    ((0, 0, -0.06), (0, -0.06, 0)),
    ((0, 0, -0.25), (0.08, 0, 0)),
    ((0, 0, 0), (-0.08, 0.1, 0)),
    ((0, 0, -0.22), (0, 0.05, 0)),
    ((0, 0, -0.03), (0.088, 0, 0)),
    ((0, 0, 0), (0, 0, 0.08)),
]


@dataclass(frozen=True)
class SceneSpec:
    """What the scene contains besides the arm.

    Attributes:
        task: "reach", "pick_cube" or "peg_insert" (decides which objects exist).
        image_height, image_width: offscreen buffer size for the cameras.
        timestep_s: physics step.
    """

    task: str
    image_height: int = 128
    image_width: int = 128
    timestep_s: float = 0.002


def _fmt(values) -> str:
    return " ".join(f"{float(v):.6g}" for v in values)


def _look_at(pos, target) -> str:
    """xyaxes attribute of a camera at `pos` looking at `target` with world z up."""
    forward = np.asarray(target, float) - np.asarray(pos, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(-forward, right)
    return _fmt(np.concatenate([right, up]))


def _arm_xml(task: str) -> str:
    """Nested bodies link1..link7 + hand + fingers (+ held peg)."""
    closing = []
    parts = []
    for i in range(N_ARM_JOINTS):
        pos, quat = _LINK_FRAMES[i]
        mass, com, inertia = _LINK_INERTIA[i]
        lo, hi = JOINT_LIMITS_RAD[i]
        cap_from, cap_to = _LINK_CAPSULES[i]
        armature = 0.1 if i < 4 else 0.05
        parts.append(
            f'<body name="link{i + 1}" pos="{_fmt(pos)}" quat="{_fmt(quat)}">'
            f'<inertial pos="{_fmt(com)}" mass="{mass}" diaginertia="{_fmt(inertia)}"/>'
            f'<joint name="joint{i + 1}" range="{lo} {hi}" armature="{armature}" damping="0.1"/>'
            f'<geom class="visual" type="capsule" size="0.055" fromto="{_fmt(cap_from)} {_fmt(cap_to)}"/>'
        )
        closing.append("</body>")
    peg = ""
    if task == "peg_insert":
        peg_z = TCP_OFFSET_M + PEG_BELOW_TCP_M - PEG_HALF_LENGTH_M
        peg = (
            f'<geom name="peg" class="robot_collision" type="box" pos="0 0 {peg_z:.6g}" '
            f'size="{PEG_HALF_WIDTH_M} {PEG_HALF_WIDTH_M} {PEG_HALF_LENGTH_M}" mass="0.05" rgba="0.2 0.4 0.9 1"/>'
            f'<site name="peg_tip" pos="0 0 {TCP_OFFSET_M + PEG_BELOW_TCP_M:.6g}" size="0.003"/>'
        )
    hand = (
        '<body name="hand" pos="0 0 0.107" quat="0.9238795 0 0 -0.3826834">'
        '<inertial pos="-0.01 0 0.03" mass="0.73" diaginertia="0.001 0.0025 0.0017"/>'
        '<geom class="robot_collision" type="box" size="0.02 0.09 0.025" pos="0 0 0.03" rgba="0.9 0.9 0.9 1"/>'
        '<geom class="visual" type="cylinder" size="0.035 0.01" pos="0 0 0.0" rgba="0.3 0.3 0.3 1"/>'
        f'<site name="tcp" pos="0 0 {TCP_OFFSET_M}" size="0.005" rgba="1 0 0 0.5"/>'
        '<camera name="wrist" pos="0.07 0 0.02" quat="0 1 0 0" fovy="75"/>'
        f"{peg}"
        '<body name="finger_left" pos="0 0 0.0584">'
        '<inertial pos="0 0.01 0.03" mass="0.1" diaginertia="1e-4 1e-4 1e-4"/>'
        f'<joint name="finger_left" type="slide" axis="0 1 0" range="0 {FINGER_STROKE_M}" damping="2"/>'
        '<geom class="pad" type="box" size="0.01 0.006 0.025" pos="0 0.006 0.03"/>'
        "</body>"
        '<body name="finger_right" pos="0 0 0.0584">'
        '<inertial pos="0 -0.01 0.03" mass="0.1" diaginertia="1e-4 1e-4 1e-4"/>'
        f'<joint name="finger_right" type="slide" axis="0 -1 0" range="0 {FINGER_STROKE_M}" damping="2"/>'
        '<geom class="pad" type="box" size="0.01 0.006 0.025" pos="0 -0.006 0.03"/>'
        "</body>"
        "</body>"
    )
    return "".join(parts) + hand + "".join(closing)


def _objects_xml(task: str) -> str:
    if task == "reach":
        # Visual-only goal marker; moved by editing model.body_pos at reset.
        return (
            '<body name="goal" pos="0.5 0 0.15">'
            '<geom class="visual" type="sphere" size="0.02" rgba="0.1 0.9 0.1 0.6"/></body>'
        )
    if task == "pick_cube":
        h = CUBE_HALF_SIZE_M
        return (
            f'<body name="cube" pos="0.5 0 {h}"><freejoint name="cube"/>'
            f'<geom name="cube" class="object" type="box" size="{h} {h} {h}" mass="0.08" rgba="0.9 0.15 0.15 1"/>'
            "</body>"
        )
    if task == "peg_insert":
        w, t, d = HOLE_HALF_WIDTH_M, 0.02, HOLE_DEPTH_M / 2
        walls = [
            ((0, w + t, d), (w + 2 * t, t, d)),
            ((0, -(w + t), d), (w + 2 * t, t, d)),
            ((w + t, 0, d), (t, w, d)),
            ((-(w + t), 0, d), (t, w, d)),
        ]
        geoms = "".join(
            f'<geom class="object" type="box" pos="{_fmt(p)}" size="{_fmt(s)}" rgba="0.55 0.55 0.6 1"/>'
            for p, s in walls
        )
        return f'<body name="hole" pos="0.5 0 0">{geoms}<site name="hole_top" pos="0 0 {HOLE_DEPTH_M}" size="0.003"/></body>'
    raise ValueError(f"unknown task {task!r}; expected reach, pick_cube or peg_insert")


def build_mjcf(spec: SceneSpec) -> str:
    """The complete MJCF document for `spec`."""
    motors = "".join(
        f'<motor name="joint{i + 1}" joint="joint{i + 1}" ctrlrange="{-t} {t}"/>'
        for i, t in enumerate(TORQUE_LIMITS_NM)
    )
    f = GRIPPER_FORCE_LIMIT_N
    fingers = "".join(
        f'<position name="{side}" joint="{side}" kp="1000" kv="30" ctrlrange="0 {FINGER_STROKE_M}" '
        f'forcerange="{-f} {f}"/>'
        for side in ("finger_left", "finger_right")
    )
    return f"""
<mujoco model="hilrl_{spec.task}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{spec.timestep_s}" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <global offwidth="{max(spec.image_width, 64)}" offheight="{max(spec.image_height, 64)}"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.4 0.4 0.4"/>
  </visual>
  <default>
    <default class="visual"><geom contype="0" conaffinity="0" rgba="0.92 0.92 0.95 1"/></default>
    <default class="robot_collision"><geom contype="2" conaffinity="1" friction="1 0.005 0.0001"/></default>
    <default class="pad"><geom contype="2" conaffinity="1" friction="1.5 0.01 0.001" condim="4" rgba="0.25 0.25 0.25 1"/></default>
    <default class="object"><geom contype="1" conaffinity="1" friction="1 0.005 0.0001" condim="4"/></default>
  </default>
  <worldbody>
    <light pos="0.5 0 1.5" dir="0 0 -1" diffuse="0.7 0.7 0.7"/>
    <geom name="table" type="box" pos="0.45 0 -0.02" size="0.6 0.7 0.02" rgba="0.76 0.66 0.52 1"
          contype="1" conaffinity="1" friction="1 0.005 0.0001"/>
    <camera name="front" pos="1.0 -0.45 0.5" xyaxes="{_look_at((1.0, -0.45, 0.5), (0.5, 0, 0.05))}" fovy="45"/>
    <body name="link0">
      <geom class="visual" type="cylinder" size="0.07 0.05" pos="0 0 0.05"/>
      {_arm_xml(spec.task)}
    </body>
    {_objects_xml(spec.task)}
  </worldbody>
  <actuator>{motors}{fingers}</actuator>
</mujoco>
"""
