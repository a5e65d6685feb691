"""Pre-flight check of a cell, run on the actor's machine before training:

    hilrl doctor --config FILE [--skip learner] [overrides...]

Checks, in order (each one independent; a failure never stops the others):
    config       every section validates (the same checks the processes make at start)
    robot        the robot server answers (protocol version, backend, clock) and how fast it serves
                 state; errors it reports (a latched reflex, a gripper fault) fail the check
    gripper      the gripper's measured opening is reported and no gripper error is active
    camera:NAME  each RealSense camera is connected and delivers frames (measured fps against the
                 configured fps); each sim camera renders
    spacemouse / keyboard / gamepad
                 the intervention device opens (only when the config uses one)
    learner      a learner answers at link.address (a heartbeat from an unknown session must come
                 back as `HelloRequired`: the learner is up and speaks this protocol)

Prints a table (check, PASS/FAIL, what was measured, how to fix a failure) and exits 1 when any
check fails, 2 when the config itself is invalid (the table names the key). Nothing moves: the robot is only read, the
gripper is not commanded.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from hilrl.transport.codec import PROTOCOL_VERSION, ProtocolError, decode, encode
from hilrl.transport.config import load_document, section
from hilrl.transport.learner_messages import (
    LEARNER_MESSAGES,
    Heartbeat,
    HelloRequired,
    Refused,
    Welcome,
)
from hilrl.transport.link import ACTOR_RECV_LIMITS
from hilrl.transport.link_config import LinkConfig
from hilrl.transport.schema import SchemaError
from hilrl.transport.security import secure_connect

# How long the robot's state is polled to measure its serving rate.
STATE_RATE_WINDOW_S = 1.0
# How long each camera is watched to measure its frame rate.
CAMERA_WINDOW_S = 1.0
# A camera delivering less than this share of its configured fps fails.
MIN_FPS_SHARE = 0.8


@dataclass
class CheckResult:
    """One row of the report.

    Attributes:
        name: what was checked. ok: passed. detail: what was measured or found.
        fix: what to do about a failure ("" when it passed).
    """

    name: str
    ok: bool
    detail: str
    fix: str = ""


def _run_check(name: str, fn: Callable[[], CheckResult | list[CheckResult]], fix: str) -> list[CheckResult]:
    """Run one check; an exception becomes a failed row carrying its message and the generic fix."""
    try:
        out = fn()
        return out if isinstance(out, list) else [out]
    except Exception as exc:  # a check must report, never crash the doctor
        if type(exc).__name__ == "CurveKeyError":
            # Missing keys block the connection before the peer is even tried.
            fix = "create the key pairs with `hilrl keys --out DIR` and copy each machine its files (README: Security)"
        return [CheckResult(name, False, f"{type(exc).__name__}: {exc}", fix)]


# ----------------------------------------------------------------------------------- checks


def check_config(doc: dict[str, Any]) -> CheckResult:
    from hilrl.actor.loop import load_settings
    from hilrl.learner.main import learner_spec
    from hilrl.robot_server.config import ServerConfig

    settings = load_settings(doc)
    section(doc, "robot_server", ServerConfig)
    # The learner's sections, but not its files (encoder weights live on the learner's machine).
    learner_spec(doc)
    cameras = [c.name for c in settings.env.observation.camera_configs]
    return CheckResult("config", True, f"task {doc.get('task', '')!r}; cameras {cameras or 'none'}; "
                                       f"interventions {settings.actor.intervention.device}")


def _open_robot(doc: dict[str, Any]):
    from hilrl.robot_server.connect import open_robot
    from hilrl.transport.sections.env import EnvConfig

    return open_robot(doc, section(doc, "env", EnvConfig).connection)


def check_home_in_box(info: Any, state: Any) -> CheckResult:
    """Home must lie inside the safety box (the server refuses to start otherwise, so this shows
    the margin, and where the TCP is now): a home near a wall leaves little room for randomised
    starts, and a TCP outside the box (moved by hand) jumps back on the first command."""
    home = np.asarray(info.home_position_m)
    low, high = np.asarray(info.workspace_min_m), np.asarray(info.workspace_max_m)
    margin_m = float(np.min(np.concatenate([home - low, high - home])))
    tcp = np.asarray(state.tcp_position_m)
    tcp_outside = bool((tcp < low - 1e-3).any() or (tcp > high + 1e-3).any())
    ok = margin_m >= 0 and not tcp_outside
    detail = (f"home TCP {np.round(home, 3).tolist()} m, {margin_m * 100:.1f} cm inside the box "
              f"{np.round(low, 3).tolist()} .. {np.round(high, 3).tolist()}")
    if tcp_outside:
        detail += f"; the TCP is now outside it at {np.round(tcp, 3).tolist()}"
    fix = "" if ok else ("choose robot_server.safety.workspace_min_m/_max_m and the home pose together (README, "
                         "'Home and box'); move the arm into the box (Desk's guiding mode) before training")
    return CheckResult("home and box", ok, detail, fix)


def check_robot(doc: dict[str, Any]) -> list[CheckResult]:
    """The robot server (or the in-process sim): info, state rate, active errors, gripper."""
    robot = _open_robot(doc)
    try:
        info = robot.info()
        count, started = 0, time.monotonic()
        while time.monotonic() - started < STATE_RATE_WINDOW_S:
            state = robot.state()
            count += 1
        rate_hz = count / (time.monotonic() - started)
        where = doc.get("robot_server", {}).get("address", "") if doc.get("env", {}).get("connection") == "server" else "in process"
        detail = (f"{where}: protocol v{PROTOCOL_VERSION}, backend {info.backend}, {info.clock} clock, "
                  f"state at {rate_hz:.0f} Hz, status {state.status}")
        arm_errors = [e for e in state.errors if not e.startswith("gripper")]
        gripper_errors = [e for e in state.errors if e.startswith("gripper")]
        rows = [CheckResult(
            "robot", not arm_errors, detail + (f"; errors: {arm_errors}" if arm_errors else ""),
            "" if not arm_errors else "make the cell safe, then clear the latched errors (`hilrl clear-errors "
                                      "--config FILE`); on a Franka also check Desk for the reflex",
        )]
        rows.append(check_home_in_box(info, state))
        rows.append(CheckResult(
            "gripper", not gripper_errors,
            f"opening {state.gripper_opening:.2f}" + (f"; errors: {gripper_errors}" if gripper_errors else ""),
            "" if not gripper_errors else "check the gripper's cable and power; a Robotiq fault clears on re-activation",
        ))
        return rows
    finally:
        robot.close()


def check_cameras(doc: dict[str, Any]) -> list[CheckResult]:
    """RealSense cameras (frames and fps, measured) and sim cameras (one render)."""
    from hilrl.hardware.realsense import RealSenseRig
    from hilrl.transport.sections.env import EnvConfig

    env = section(doc, "env", EnvConfig)
    rows: list[CheckResult] = []
    for name, cfg in env.realsense.items():
        def one(name: str = name, cfg: Any = cfg) -> CheckResult:
            rig = RealSenseRig({name: cfg})
            try:
                rig.start(first_frame_timeout_s=5.0)
                time.sleep(CAMERA_WINDOW_S)
                fps = rig.diagnostics()[name]["fps"]
            finally:
                rig.stop()
            ok = fps >= MIN_FPS_SHARE * cfg.fps
            return CheckResult(f"camera:{name}", ok, f"serial {cfg.serial}: {fps:.1f} fps (configured {cfg.fps})",
                               "" if ok else "use a USB 3 port and cable (lsusb -t shows 5000M), lower the resolution "
                                             "or fps, or give the camera its own USB controller")

        rows += _run_check(f"camera:{name}", one,
                           "plug the camera in (the error lists the serials that are connected) and check the serial "
                           "in env.realsense; `pip install -e \".[real]\"` for pyrealsense2")
    robot_cameras = [c.name for c in env.observation.camera_configs if c.name not in env.realsense]
    if robot_cameras:
        def rendered() -> CheckResult:
            robot = _open_robot(doc)
            try:
                images = robot.render(robot_cameras)
            finally:
                robot.close()
            return CheckResult("camera:" + ",".join(robot_cameras), True,
                               f"robot renders {images.pixels[0].shape[1]}x{images.pixels[0].shape[0]}")

        rows += _run_check("camera:" + ",".join(robot_cameras), rendered,
                           "these cameras must exist on the robot (the sim has front and wrist) or be listed in env.realsense")
    return rows


def check_intervention_device(doc: dict[str, Any]) -> list[CheckResult]:
    from hilrl.actor.config import ActorConfig

    config = section(doc, "actor", ActorConfig).intervention
    if config.device == "spacemouse":
        from hilrl.hardware.spacemouse import SpaceMouseReader

        def spacemouse() -> CheckResult:
            reader = SpaceMouseReader(config.spacemouse)
            try:
                return CheckResult("spacemouse", reader.connected, "opened" if reader.connected else "not connected",
                                   "" if reader.connected else "plug the SpaceMouse in")
            finally:
                reader.close()

        # The reader's own error message carries the udev rule; this fix is for anything else.
        return _run_check("spacemouse", spacemouse, "see the message: usually the udev rule, or `pip install pyspacemouse`")
    if config.device == "gamepad":
        from hilrl.hardware.gamepad import GamepadReader

        def gamepad() -> CheckResult:
            reader = GamepadReader(config.gamepad)  # not found: an error listing the connected joysticks
            try:
                return CheckResult("gamepad", reader.connected, "opened" if reader.connected else "not connected",
                                   "" if reader.connected else "plug the gamepad in")
            finally:
                reader.close()

        return _run_check("gamepad", gamepad, "see the message: it lists the joysticks pygame sees (`pip install pygame`)")
    if config.device == "keyboard":
        ok = sys.stdin.isatty()
        return [CheckResult("keyboard", ok, "stdin is a terminal" if ok else "stdin is not a terminal",
                            "" if ok else "run the actor in a terminal (not under nohup or a pipe) to use the keyboard")]
    return []


def check_learner(doc: dict[str, Any], timeout_s: float = 2.0) -> CheckResult:
    """A heartbeat from a session the learner has never seen must be answered by HelloRequired
    (or a Refused naming a protocol mismatch); nothing is registered with the learner."""
    link = section(doc, "link", LinkConfig)
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    # Without a usable connection (e.g. CurveZMQ keys the learner refused) a send would block
    # forever; bounded, it ends as "no answer" below.
    socket.setsockopt(zmq.SNDTIMEO, max(1, int(timeout_s * 1000)))
    try:
        secure_connect(socket, link.address, link.curve)
        session = f"doctor-{uuid.uuid4().hex[:8]}"
        deadline = time.monotonic() + timeout_s
        try:
            socket.send_multipart(encode(Heartbeat(session=session), LEARNER_MESSAGES, sender=session))
        except zmq.Again:
            deadline = time.monotonic()
        while (left := deadline - time.monotonic()) > 0:
            if not socket.poll(int(left * 1000)):
                break
            try:
                _, msg = decode(socket.recv_multipart(), LEARNER_MESSAGES, ACTOR_RECV_LIMITS)
            except ProtocolError as exc:
                return CheckResult("learner", False, f"{link.address}: answered with {exc.code}: {exc}",
                                   "run the same hilrl version on the actor and the learner machine")
            if isinstance(msg, (HelloRequired, Welcome)):
                return CheckResult("learner", True, f"{link.address}: answering")
            if isinstance(msg, Refused):
                return CheckResult("learner", False, f"{link.address}: refused: {msg.message}",
                                   "run the same hilrl version and config on both machines")
        return CheckResult("learner", False, f"no answer from {link.address} within {timeout_s:g} s",
                           "start `hilrl learner --config FILE --run-dir DIR` there; off loopback check link.curve "
                           "keys and that the port is open in the firewall")
    finally:
        socket.close(linger=0)
        context.term()


# ----------------------------------------------------------------------------------- report


def check_gymnasium_env(doc: dict[str, Any]) -> CheckResult:
    """An `env.kind: gymnasium` env: built, reset and stepped once with a zero action; its layout
    and the success key's presence reported (the env is the robot and the cameras)."""
    from hilrl.actor.make import make_env

    env = make_env(doc)
    try:
        obs, _ = env.reset(seed=0)
        _, _, _, _, info = env.step(np.zeros(env.action_space.shape, np.float32))
        g = env.gym_config
        cameras = {name: list(obs[name].shape) for name in obs if name != "state"}
        return CheckResult("env", True, f"{g.id}: state {obs['state'].shape[0]}, cameras {cameras or 'none'}, action "
                                        f"{env.action_space.shape[0]} ({', '.join(env.action_names)}), success from "
                                        f"{g.success_info_key or 'operator labels only'} (info now {info['succeeded']})")
    finally:
        env.close()


def run_checks(doc: dict[str, Any], skip: Sequence[str] = ()) -> list[CheckResult]:
    """Every check (except those named in `skip`: robot, cameras, intervention, learner). A
    gymnasium env (`env.kind: gymnasium`) is checked as "env" in place of robot and cameras."""
    rows = _run_check("config", lambda: check_config(doc), "fix the named key in the config file")
    if not rows[0].ok:
        return rows  # the other checks read the same sections
    gymnasium = (doc.get("env") or {}).get("kind") == "gymnasium"
    plan: list[tuple[str, Callable[[], CheckResult | list[CheckResult]], str]] = [
        ("robot", lambda: check_robot(doc),
         "start `hilrl robot-server --config FILE` on the robot PC; check robot_server.address, "
         "robot_server.curve keys off loopback, and the network"),
        ("cameras", lambda: check_cameras(doc), "see the camera's message"),
    ] if not gymnasium else [
        ("env", lambda: check_gymnasium_env(doc), "see the env's message (install its package, check env.gymnasium)"),
    ]
    plan += [
        ("intervention", lambda: check_intervention_device(doc), "see the device's message"),
        ("learner", lambda: check_learner(doc), "start the learner"),
    ]
    for name, fn, fix in plan:
        if name not in skip:
            rows += _run_check(name, fn, fix)
    return rows


def format_table(rows: Sequence[CheckResult]) -> str:
    width = max(len(r.name) for r in rows)
    lines = []
    for r in rows:
        lines.append(f"{r.name:<{width}}  {'PASS' if r.ok else 'FAIL'}  {r.detail}")
        if not r.ok and r.fix:
            lines.append(f"{'':<{width}}        fix: {r.fix}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Pre-flight check of a cell: robot, cameras, "
                                                            "intervention device, gripper, learner, config.")
    parser.add_argument("--config", required=True, help="task YAML file")
    parser.add_argument("--skip", action="append", default=[], choices=["robot", "cameras", "env", "intervention", "learner"],
                        help="leave out a check (repeatable), e.g. --skip learner before the learner is started")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. link.address=tcp://10.0.0.2:5556")
    args = parser.parse_args(argv)
    try:
        doc = load_document(args.config, args.overrides)
    except (SchemaError, FileNotFoundError, ValueError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    rows = run_checks(doc, args.skip)
    print(format_table(rows))
    failed = [r.name for r in rows if not r.ok]
    print(f"\n{len(rows) - len(failed)}/{len(rows)} checks passed" + (f"; failed: {', '.join(failed)}" if failed else ""))
    if "config" in failed:
        return 2  # like every other command on a bad config; the table names the key
    return 1 if failed else 0
