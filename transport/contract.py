"""The learning contract: the config values every actor and the learner must agree on, and only
those. The handshake compares it key by key and refuses a mismatch naming each differing key with
both values; everything else in a config is a per-robot or per-process setting that may differ.

    contract (must agree)                         per robot / per process (may differ)
    task                                          robot_server.* but the control rate: addresses,
    env.action.*: action layout and scales,         curve keys, safety limits, franka hostname
      gripper                                     env.connection, env.realsense (serials),
    env.observation.*: state blocks, cameras        reset noise, workspace, frame age, clear errors
      (crop, size, role)                          actor.*: seed, robot name, throttle, device,
    env.max_episode_steps, success_reward,          interventions, evaluation
      success_position_m / tolerance_m,           learner.* but sac, algorithm: batch, demos...
      reward_classifier: episode and success      link.*: addresses, keys, timeouts
    robot_server.control_rate_hz: control period  dashboard, reward_classifier (training)
    learner.sac.*: the acting network's shape     learner.sac.compile_critics
    learner.algorithm: how the actor acts
      (deterministic for bc / hg_dagger, base +
      residual for residual_sac), and
      learner.residual.scale

Values are compared after validation (defaults filled in), so a key left out on one side and set
to its default on the other agrees.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hilrl.transport.config import section
from hilrl.transport.schema import to_dict
from hilrl.transport.sections.env import EnvConfig
from hilrl.transport.sections.learner import LearnerConfig

DEFAULT_CONTROL_RATE_HZ = 10.0
"""`robot_server.control_rate_hz`'s default (hilrl.robot_server.config.ServerConfig uses it)."""

ENV_CONTRACT_KEYS = (
    "kind", "gymnasium", "action", "observation", "max_episode_steps", "success_reward", "success_position_m",
    "success_tolerance_m", "reward_classifier",
)
"""The `env:` keys in the contract (the rest of the section is per robot)."""

SAC_PER_PROCESS_KEYS = ("compile_critics",)
"""`learner.sac:` keys outside the contract: how the learner computes, not what it learns."""


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            _flatten(inner, f"{prefix}.{key}", out)
    else:
        out[prefix] = value


def learning_contract(doc: dict[str, Any]) -> dict[str, Any]:
    """The contract of a config document as {dotted key: resolved value} (JSON-able).

    Raises:
        SchemaError: the sections it reads do not validate (names the key).
    """
    env = to_dict(section(doc, "env", EnvConfig))
    learner = section(doc, "learner", LearnerConfig)
    sac = to_dict(learner.sac)
    for key in SAC_PER_PROCESS_KEYS:
        sac.pop(key)
    rate = (doc.get("robot_server") or {}).get("control_rate_hz", DEFAULT_CONTROL_RATE_HZ)
    out: dict[str, Any] = {"task": doc.get("task", ""), "robot_server.control_rate_hz": float(rate)}
    for key in ENV_CONTRACT_KEYS:
        _flatten(env[key], f"env.{key}", out)
    _flatten(sac, "learner.sac", out)
    out["learner.algorithm"] = learner.algorithm
    if learner.algorithm == "residual_sac":  # (base_run is a path: per machine)
        out["learner.residual.scale"] = learner.residual.scale
    return json.loads(json.dumps(out))  # plain JSON values: tuples become lists, as on the wire


def contract_hash(contract: dict[str, Any]) -> str:
    """Short stable hash of a contract (sorted-key JSON)."""
    blob = json.dumps(contract, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def contract_differences(actor: dict[str, Any], learner: dict[str, Any]) -> list[str]:
    """Every key whose value differs, as "key: learner X, actor Y" (a key only one side has shows
    "(not set)" on the other), sorted by key."""
    missing = "(not set)"
    lines = []
    for key in sorted(set(actor) | set(learner)):
        a, b = actor.get(key, missing), learner.get(key, missing)
        if a != b:
            lines.append(f"{key}: learner {_shown(b)}, actor {_shown(a)}")
    return lines


def _shown(value: Any) -> str:
    return value if isinstance(value, str) and value == "(not set)" else json.dumps(value)
