"""The `link:` section: how actors and the learner reach each other."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CurveConfig:
    """CurveZMQ keys (files written by `hilrl keys`). Required to bind anything but loopback.

    Attributes:
        server_public_key: the learner's public key file (both sides need it).
        server_secret_key: the learner's secret key file (learner only).
        client_public_key / client_secret_key: this actor's key pair (actor only).
        authorized_clients_dir: folder of public keys of actors the learner accepts (learner only).
    """

    server_public_key: str
    server_secret_key: str | None = None
    client_public_key: str | None = None
    client_secret_key: str | None = None
    authorized_clients_dir: str | None = None


@dataclass
class LinkConfig:
    """Actor <-> learner connection.

    Attributes:
        address: the learner's ROUTER endpoint (the learner binds it, actors connect).
        heartbeat_s: each side sends a heartbeat this often.
        peer_timeout_s: no message for this long means the peer is gone.
        max_in_flight_chunks: chunks an actor sends before waiting for acks (credit window).
        max_chunks_in_memory: unacked chunks an actor keeps in memory too (every one is on disk in
            its spool from before it is first sent; beyond this many only the spool holds them).
        curve: CurveZMQ keys; null on loopback.
    """

    address: str = "tcp://127.0.0.1:5556"
    heartbeat_s: float = 0.5
    peer_timeout_s: float = 3.0
    max_in_flight_chunks: int = 32
    max_chunks_in_memory: int = 256
    curve: CurveConfig | None = None

    def __post_init__(self) -> None:
        if self.heartbeat_s <= 0 or self.peer_timeout_s <= self.heartbeat_s:
            raise ValueError("heartbeat_s must be > 0 and peer_timeout_s > heartbeat_s")
        if self.max_in_flight_chunks < 1 or self.max_chunks_in_memory < self.max_in_flight_chunks:
            raise ValueError("need max_in_flight_chunks >= 1 and max_chunks_in_memory >= max_in_flight_chunks")
