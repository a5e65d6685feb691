"""The actor <-> learner link: reliable, non-blocking transition streaming and weight delivery.

The actor's DEALER connects to the learner's ROUTER (`LinkConfig.address`); each side runs one I/O
thread that owns its socket, and no public method waits for the network. The modules:

- `common`: the protocol (described in full in its docstring), the receive limits of each
  direction, and what both ends use: the I/O threads' wake-up pipe and loop constants,
  rate-limited logging, socket heartbeat options, the chunk-against-handshake check.
- `actor_side`: `ActorLink`, the actor's end: unacknowledged messages held in memory or spooled
  to disk, credit-limited sending and resending, the handshake, received weights.
- `learner_side`: `LearnerLink`, the learner's end: the handshake check, the durable store of
  received chunks and episode stats, the dedupe table (`SeqWindow`), weights delivery.

Delivery guarantees, for chunks and episode stats:

- A message is acknowledged only once the learner has stored it durably (group commit, fsync by
  default); until its ack the actor keeps it, in memory or in its spool (across actor restarts).
- After every (re-)handshake, e.g. after a reconnect or a learner restart, the actor resends
  everything unacknowledged, in sequence order; also anything unacknowledged for
  `2 * peer_timeout_s`.
- Duplicates are dropped: the learner deduplicates by (actor_session, seq), acks a duplicate again
  but stores and delivers it once, and rebuilds that table from its store after a restart.

Everything callers use is importable from here.
"""

from hilrl.transport.link.actor_side import ActorLink
from hilrl.transport.link.common import (
    ACTOR_RECV_LIMITS,
    LEARNER_RECV_LIMITS,
    AddressInUseError,
    check_chunk,
)
from hilrl.transport.link.learner_side import (
    LearnerLink,
    SeqWindow,
    handshake_mismatch,
    static_weights_id,
)

__all__ = [
    "ACTOR_RECV_LIMITS",
    "LEARNER_RECV_LIMITS",
    "ActorLink",
    "AddressInUseError",
    "LearnerLink",
    "SeqWindow",
    "check_chunk",
    "handshake_mismatch",
    "static_weights_id",
]
