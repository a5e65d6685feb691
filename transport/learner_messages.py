"""Messages between actors and the learner.

Actor (DEALER) -> learner (ROUTER):
    Hello            first message, and again whenever the learner says it does not know us
    TransitionChunk  about one second of steps; acknowledged by `ChunkAck` once durably stored
    EpisodeStats     one per finished episode; acknowledged like a chunk (same seq space)
    WeightsRequest   "send me weights newer than version N"
    Heartbeat        both ways, so each side knows the other is alive

Learner -> actor: Welcome | Refused (to Hello), ChunkAck, StaticWeights, Weights, HelloRequired,
Heartbeat.

Weights come in two parts: `Weights` (what training changes, every publish) and `StaticWeights`
(a frozen image backbone: never changes, sent once per actor). Each `Weights` names the static
part it goes with by `static_id`; an actor that lacks it says so in `WeightsRequest` and gets it
(first, then the weights) in reply.

Transition records. A chunk holds K *records*, in the order the actor saw them. A record is one
observation plus, when `has_action`, the transition that leaves it (action, reward, flags); the
next observation of that transition is the next record, which belongs to the same episode. The
last observation of an episode (after termination or truncation) is a record with
`has_action = False`. So every observation travels (and is stored) exactly once, and the next
observation is found by index, correct at episode ends, truncations and buffer wrap-around.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hilrl.transport.codec import Registry


@dataclass
class ObservationSpec:
    """Shape of the observations an actor produces.

    Attributes:
        state_dim: length of the float32 `state` vector.
        cameras: camera name -> [height, width, 3] of its uint8 image.
    """

    state_dim: int
    cameras: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class Hello:
    """Actor introduces itself.

    Attributes:
        actor_session: unique id of this actor process run (dedupe key with chunk seq).
        protocol_version: the actor's protocol version (checked field by field for clear errors).
        observation: what the actor observes.
        action_dim: length of the action vector (Box(-1, 1)).
        config_hash: hash of the actor's learning contract (hilrl.transport.contract.contract_hash).
        weights_version: newest weights the actor holds (-1: none).
        contract: the learning contract itself ({dotted key: resolved value},
            hilrl.transport.contract.learning_contract), so a mismatch names every differing key.
        robot_name: the actor's robot (`actor.robot_name`), for the learner's per-robot reports.
    """

    actor_session: str
    protocol_version: int
    observation: ObservationSpec
    action_dim: int
    config_hash: str
    weights_version: int = -1
    contract: dict[str, Any] = field(default_factory=dict)
    robot_name: str = ""


@dataclass
class Welcome:
    """Learner accepts an actor.

    Attributes:
        learner_session: unique id of this learner process run; a change means the learner restarted.
        weights_version: newest weights the learner has published (-1: none yet).
        updates_done: learner gradient updates so far.
        env_steps_ahead: env steps (over all robots) the learner has not yet done its configured
            updates for (`learner.updates_per_env_step`); a lockstep actor waits while this exceeds
            its `actor.throttle_slack_steps`. 0 when the learner is caught up or uncapped.
    """

    learner_session: str
    weights_version: int
    updates_done: int
    env_steps_ahead: int = 0


@dataclass
class Refused:
    """Learner refuses an actor's Hello. `field` names what did not match."""

    field: str
    message: str


@dataclass
class HelloRequired:
    """Learner got a message from an actor session it has not welcomed (e.g. after a restart)."""

    actor_session: str


@dataclass
class TransitionChunk:
    """K transition records (see the module docstring).

    Attributes:
        actor_session: sender's session id. seq: sender's sequence number (dedupe with the session).
        obs_state: (K, state_dim) float32.
        obs_images: camera -> (K, H, W, 3) uint8.
        action: (K, action_dim) float32 (zeros where has_action is False).
        reward: (K,) float32. terminated, truncated, intervened, has_action: (K,) bool.
        gripper_switched: (K,) bool, the action changed the gripper command (grasp-critic penalty).
        episode_id: (K,) int64, unique per actor session. step_index: (K,) int32 within the episode.
        policy_version: (K,) int64, weights version that chose the action (-1: none/scripted).
        robot_name: the sender's `actor.robot_name` (stamped by its link), for per-robot counts.
    """

    actor_session: str
    seq: int
    obs_state: np.ndarray = field(metadata={"shape": (None, None), "dtype": "float32"})
    action: np.ndarray = field(metadata={"shape": (None, None), "dtype": "float32"})
    reward: np.ndarray = field(metadata={"shape": (None,), "dtype": "float32"})
    terminated: np.ndarray = field(metadata={"shape": (None,), "dtype": "bool"})
    truncated: np.ndarray = field(metadata={"shape": (None,), "dtype": "bool"})
    intervened: np.ndarray = field(metadata={"shape": (None,), "dtype": "bool"})
    gripper_switched: np.ndarray = field(metadata={"shape": (None,), "dtype": "bool"})
    has_action: np.ndarray = field(metadata={"shape": (None,), "dtype": "bool"})
    episode_id: np.ndarray = field(metadata={"shape": (None,), "dtype": "int64"})
    step_index: np.ndarray = field(metadata={"shape": (None,), "dtype": "int32"})
    policy_version: np.ndarray = field(metadata={"shape": (None,), "dtype": "int64"})
    obs_images: dict[str, np.ndarray] = field(
        default_factory=dict, metadata={"shape": (None, None, None, 3), "dtype": "uint8"}
    )
    robot_name: str = ""

    def __post_init__(self) -> None:
        k = len(self.obs_state)
        for name in ("action", "reward", "terminated", "truncated", "intervened", "gripper_switched",
                     "has_action", "episode_id", "step_index", "policy_version"):
            if len(getattr(self, name)) != k:
                raise ValueError(f"{name} has {len(getattr(self, name))} records, obs_state has {k}")
        for cam, images in self.obs_images.items():
            if len(images) != k:
                raise ValueError(f"obs_images.{cam} has {len(images)} records, obs_state has {k}")

    def __len__(self) -> int:
        return len(self.obs_state)


@dataclass
class ChunkAck:
    """A chunk (or episode stats) with this (actor_session, seq) is durably stored.

    Attributes:
        seq: the acknowledged sequence number.
        updates_done / weights_version / env_steps_ahead: learner progress (for the actor's
            throttle and weights; see Welcome).
        actor_session: the acknowledged message's own session. An actor resends chunks spooled by
            an earlier run under their old session and seq, which can equal seqs of its current
            session; the session makes the ack unambiguous. ("" from a sender that predates it.)
    """

    seq: int
    updates_done: int
    weights_version: int
    actor_session: str = ""
    env_steps_ahead: int = 0


@dataclass
class EpisodeStats:
    """Summary of one finished episode (acknowledged and resent like a chunk).

    Attributes:
        episode_return: sum of rewards. success: the task succeeded. length: steps.
        interventions: number of separate operator takeovers; intervention_steps: steps driven by
            the operator; intervention_fraction = intervention_steps / length.
        period_p50_ms / period_p99_ms / period_max_ms: control loop period over the episode.
        policy_version: weights version at the end of the episode.
        env_steps: actor's total env steps after this episode.
        robot_name: the sender's `actor.robot_name` (stamped by its link).
    """

    actor_session: str
    seq: int
    episode_id: int
    episode_return: float
    success: bool
    length: int
    interventions: int
    intervention_steps: int
    intervention_fraction: float
    period_p50_ms: float
    period_p99_ms: float
    policy_version: int
    env_steps: int
    period_max_ms: float = 0.0
    robot_name: str = ""


@dataclass
class WeightsRequest:
    """Ask for weights newer than `have_version`, and for the static part when the actor's
    `have_static_id` ("" : none) is not the learner's."""

    have_version: int
    have_static_id: str = ""


@dataclass
class Weights:
    """Policy weights the actor needs (float32 tensors by name) with their version.

    static_id: the StaticWeights these go with ("" : none); an actor uses them only together."""

    version: int
    tensors: dict[str, np.ndarray] = field(default_factory=dict, metadata={"dtype": "float32"})
    static_id: str = ""


@dataclass
class StaticWeights:
    """Tensors that never change during training (a frozen image backbone), float32 by name.

    static_id: SHA-256 (hex) of the tensors' names, shapes and bytes: equal ids, equal tensors."""

    static_id: str
    tensors: dict[str, np.ndarray] = field(default_factory=dict, metadata={"dtype": "float32"})


@dataclass
class Heartbeat:
    """I am alive.

    Attributes:
        session: sender's session id.
        updates_done / weights_version / env_steps_ahead: learner progress (0 / -1 / 0 from an
            actor; see Welcome).
        env_steps: actor progress (0 from the learner).
    """

    session: str
    updates_done: int = 0
    weights_version: int = -1
    env_steps: int = 0
    env_steps_ahead: int = 0


LEARNER_MESSAGES = Registry(
    {
        "hello": Hello,
        "welcome": Welcome,
        "refused": Refused,
        "hello_required": HelloRequired,
        "transition_chunk": TransitionChunk,
        "chunk_ack": ChunkAck,
        "episode_stats": EpisodeStats,
        "weights_request": WeightsRequest,
        "weights": Weights,
        "static_weights": StaticWeights,
        "heartbeat": Heartbeat,
    }
)
