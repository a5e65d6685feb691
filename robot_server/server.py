"""The robot server process: one arm backend behind a ZeroMQ ROUTER socket.

Reliability follows ZeroMQ's *lazy pirate* pattern: clients use REQ sockets, and when a reply does
not come within their timeout they close the socket, open a new one and resend the same request
with the same sequence number. The server therefore caches its last reply per sender (the session
id in the message envelope, not the ZeroMQ routing id, which changes with every new client socket);
a resend of the same seq gets the cached reply without running the request again, so a retried
`Advance` advances physics once.

Every request gets exactly one reply. Frames that fail to decode get an `ErrorReply` with the
`ProtocolError`'s code and message; a ROUTER message without the empty delimiter frame (not sent by
a REQ socket, nor by a DEALER that frames like one) cannot be answered meaningfully and is logged
and dropped. Nothing a client sends stops the server.

Clocks:
    lockstep: physics moves only on `Advance` requests.
    realtime: the single-threaded loop polls the socket with a short timeout and advances physics
        by the wall time elapsed (capped per iteration, so a slow machine runs robot time slow
        instead of spiralling), and runs the service's watchdog and force checks.

The server binds loopback unless `robot_server.curve` holds CurveZMQ keys (`hilrl keys`): then it
binds any address as a CURVE server that admits only the authorized client keys
(`transport.security.secure_bind`).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import logging
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import zmq

from hilrl.robot_server.backend import ArmBackend
from hilrl.robot_server.config import ServerConfig
from hilrl.robot_server.service import PhysicsPacer, RobotService
from hilrl.transport.codec import Limits, ProtocolError, decode, encode
from hilrl.transport.link_config import CurveConfig
from hilrl.transport.robot_messages import ROBOT_MESSAGES, ErrorReply
from hilrl.transport.schema import SchemaError
from hilrl.transport.security import (
    CurveKeyError,
    InsecureAddressError,
    require_curve_or_loopback,
    secure_bind,
)

log = logging.getLogger(__name__)

REQUEST_LIMITS = Limits(max_header_bytes=64 * 1024, max_frame_bytes=1024 * 1024, max_frames=16)
"""What the server accepts in one request (a request carries at most a few small arrays)."""

# ZeroMQ drops (disconnects) peers sending frames above this; below it, oversized frames still
# reach the codec and get a "too_large" error reply. It only guards the server's memory.
_ZMQ_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

_TCP_ADDRESS = re.compile(r"^tcp://(?P<host>\[[^\]]+\]|[^:/]+):(?P<port>\d+|\*)$")


class ConfigError(Exception):
    """A configuration file or command line that cannot be served (message says why and where)."""


# ---------------------------------------------------------------------------------- addresses


def split_tcp_address(address: str) -> tuple[str, str]:
    """(host, port) of a "tcp://host:port" endpoint; host keeps IPv6 brackets. Raises ConfigError."""
    m = _TCP_ADDRESS.match(address)
    if m is None:
        raise ConfigError(f"address {address!r} is not of the form tcp://HOST:PORT")
    return m["host"], m["port"]


def check_loopback(address: str, curve: CurveConfig | None = None) -> None:
    """Refuse any endpoint another machine could reach, unless CurveZMQ keys are configured.

    Accepts tcp:// on a loopback address (127.0.0.0/8, ::1, localhost), ipc:// and inproc://.
    Raises:
        ConfigError: naming the address and what to do instead.
    """
    if not address.startswith(("ipc://", "inproc://")):
        split_tcp_address(address)  # a malformed address gets its own message
    try:
        require_curve_or_loopback(address, curve, config_key="robot_server.curve")
    except InsecureAddressError as exc:
        raise ConfigError(str(exc)) from None


def _bind_endpoint(address: str) -> str:
    """ZeroMQ spelling of `address`: port 0 means "any free port" (ZeroMQ writes it as '*')."""
    if address.startswith("tcp://"):
        host, port = split_tcp_address(address)
        if port == "0":
            return f"tcp://{host}:*"
    return address


# ---------------------------------------------------------------------------------- backends


def make_backend(config: ServerConfig, task: str) -> ArmBackend:
    """Build the backend named by `config.backend`.

    Raises:
        ConfigError: an unknown backend, or one that cannot start with this config or machine
            (the message names the config key or the package to install).
    """
    if config.backend == "sim":
        # Imported here so the server module loads without MuJoCo (e.g. for `--help`).
        from hilrl.robot_server.sim.backend import make_backend as make_sim_backend

        return make_sim_backend(config, task)
    if config.backend == "franka":
        # Imported here so the server module loads without panda-py (a sim-only machine).
        from hilrl.robot_server.franka.backend import FrankaSetupError
        from hilrl.robot_server.franka.backend import make_backend as make_franka_backend

        try:
            return make_franka_backend(config, task)
        except FrankaSetupError as exc:
            raise ConfigError(str(exc)) from None
    raise ConfigError(f"backend {config.backend!r} does not exist; use sim or franka")


# ---------------------------------------------------------------------------------- server


class _ReplyCache:
    """Last reply per sender session, so a lazy-pirate resend is answered, not re-executed.

    Bounded by sender count and by bytes (least recently used sender evicted first), so abandoned
    sessions and large camera replies cannot grow memory without limit.
    """

    def __init__(self, max_senders: int = 1024, max_bytes: int = 64 * 1024 * 1024):
        self._max_senders = max_senders
        self._max_bytes = max_bytes
        self._bytes = 0
        self._entries: collections.OrderedDict[str, tuple[int, list[bytes]]] = collections.OrderedDict()

    @staticmethod
    def _size(sender: str, frames: list[bytes]) -> int:
        return len(sender) + sum(len(f) for f in frames)

    def get(self, sender: str, seq: int) -> list[bytes] | None:
        entry = self._entries.get(sender)
        if entry is None or entry[0] != seq:
            return None
        self._entries.move_to_end(sender)
        return entry[1]

    def put(self, sender: str, seq: int, frames: list[bytes]) -> None:
        old = self._entries.pop(sender, None)
        if old is not None:
            self._bytes -= self._size(sender, old[1])
        self._entries[sender] = (seq, frames)
        self._bytes += self._size(sender, frames)
        # The newest entry always stays: it is the one a resend would ask for.
        while len(self._entries) > 1 and (len(self._entries) > self._max_senders or self._bytes > self._max_bytes):
            evicted, (_, evicted_frames) = self._entries.popitem(last=False)
            self._bytes -= self._size(evicted, evicted_frames)


class RobotServer:
    """A `RobotService` behind a bound ROUTER socket. Single-threaded: call `run` from one thread.

    Args:
        service: the request handler (owns the safety layer).
        socket: a bound ROUTER socket; the server closes it in `close`.
        limits: what one request may contain.
    """

    def __init__(self, service: RobotService, socket: zmq.Socket, limits: Limits = REQUEST_LIMITS):
        self.service = service
        self.socket = socket
        self.limits = limits
        self.server_id = f"robot_server-{uuid.uuid4().hex[:12]}"
        self._cache = _ReplyCache()
        config = service.config
        self._pacer = (
            PhysicsPacer(service, timestep_s=config.sim.timestep_s) if config.clock == "realtime" else None
        )
        self._behind_since_log_s = 0.0
        self._last_behind_log_s = -1e9

    def handle_frames(self, frames: Sequence[bytes], now_s: float) -> list[bytes] | None:
        """Reply frames (routing envelope included) for one ROUTER message, or None to drop it."""
        if len(frames) < 3 or frames[1] != b"":
            log.warning(
                "dropping a message with a malformed envelope (%d frames, no empty delimiter after the "
                "routing id); clients must use REQ sockets or DEALER with an empty first frame",
                len(frames),
            )
            return None
        identity, body = frames[0], frames[2:]
        try:
            envelope, msg = decode(body, ROBOT_MESSAGES, self.limits)
        except ProtocolError as exc:
            log.warning("refusing a request: %s: %s", exc.code, exc)
            return [identity, b"", *self._encode(ErrorReply(exc.code, str(exc)), _peek_seq(body, self.limits))]
        except Exception as exc:  # a decoder bug must not take the server down
            log.exception("decoder failed on a request")
            return [identity, b"", *self._encode(ErrorReply("garbled", f"undecodable request: {exc}"), 0)]

        if envelope.sender:
            cached = self._cache.get(envelope.sender, envelope.seq)
            if cached is not None:
                log.info("resend of %s seq %d from %s: replaying the cached reply", envelope.kind, envelope.seq, envelope.sender)
                return [identity, b"", *cached]
        try:
            reply = self.service.handle(msg, now_s)
        except Exception as exc:  # RobotService.handle should not raise; belt and braces
            log.exception("service failed on %s", envelope.kind)
            reply = ErrorReply("internal_error", f"{envelope.kind} failed in the server: {type(exc).__name__}: {exc}")
        out = self._encode(reply, envelope.seq)
        if envelope.sender:
            self._cache.put(envelope.sender, envelope.seq, out)
        return [identity, b"", *out]

    def _encode(self, reply: Any, seq: int) -> list[bytes]:
        try:
            frames = encode(reply, ROBOT_MESSAGES, sender=self.server_id, seq=seq)
        except Exception as exc:  # e.g. a non-finite number from a diverged simulation
            log.exception("could not encode a %s reply", type(reply).__name__)
            frames = encode(
                ErrorReply("backend_error", f"the reply could not be encoded: {exc}"),
                ROBOT_MESSAGES,
                sender=self.server_id,
                seq=seq,
            )
        # Copied to bytes: array frames may view backend buffers that later change, and the
        # reply may be replayed from the cache.
        return [bytes(f) for f in frames]

    def run(self, stop_event: threading.Event) -> None:
        """Serve until `stop_event` is set."""
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        realtime = self._pacer is not None
        # Realtime: wake often to keep physics on the wall clock; lockstep: only to notice a stop.
        poll_ms = 2 if realtime else 100
        while not stop_event.is_set():
            ready = poller.poll(poll_ms)
            if realtime:
                self._keep_pace()
            if not ready:
                continue
            # Bounded drain: in realtime, physics must get its turn again soon.
            for _ in range(32):
                try:
                    frames = self.socket.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                out = self.handle_frames(frames, time.monotonic())
                if out is not None:
                    try:
                        self.socket.send_multipart(out, zmq.NOBLOCK)
                    except zmq.Again:
                        log.warning("reply dropped: the client's queue is full")
                if realtime:
                    self._keep_pace()

    def _keep_pace(self) -> None:
        assert self._pacer is not None
        now_s = time.monotonic()
        try:
            dropped_s = self._pacer.catch_up(now_s)
        except Exception:
            log.exception("backend failed while advancing physics")
            return
        if dropped_s > 0:
            self._behind_since_log_s += dropped_s
            if now_s - self._last_behind_log_s > 5.0:
                log.warning(
                    "falling behind real time: %.0f ms of physics skipped since the last report; "
                    "robot time runs slower than wall time",
                    1000 * self._behind_since_log_s,
                )
                self._behind_since_log_s = 0.0
                self._last_behind_log_s = now_s

    def close(self) -> None:
        self.socket.close(linger=0)


def _peek_seq(body: Sequence[bytes], limits: Limits) -> int:
    """Best-effort request seq for an error reply to a message that did not decode."""
    try:
        if len(body[0]) > limits.max_header_bytes:
            return 0
        seq = json.loads(bytes(body[0])).get("seq", 0)
        return seq if isinstance(seq, int) and not isinstance(seq, bool) and abs(seq) < 2**63 else 0
    except Exception:
        return 0


def serve(
    config: ServerConfig,
    task: str,
    stop_event: threading.Event | None = None,
    *,
    on_ready: Callable[[str], None] | None = None,
    backend: ArmBackend | None = None,
) -> None:
    """Run a robot server until `stop_event` is set (or SIGINT/SIGTERM when none is given).

    Args:
        config: server configuration; `config.address` must be loopback (port 0: any free port).
        task: sim task name ("reach", "pick_cube", "peg_insert").
        stop_event: set it to stop the server. None: stop on SIGINT/SIGTERM (main thread only).
        on_ready: called with the bound endpoint (real port) once the server accepts requests.
        backend: an already-built backend to serve instead of `make_backend(config, task)`; the
            server closes it on exit.
    Raises:
        ConfigError: a non-loopback address or an unavailable backend.
    """
    check_loopback(config.address, config.curve)
    restore: dict[int, Any] = {}
    if stop_event is None:
        stop_event = threading.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                restore[sig] = signal.signal(sig, lambda signum, frame: stop_event.set())
    context = zmq.Context()
    server: RobotServer | None = None
    auth = None
    try:
        try:
            if backend is None:
                backend = make_backend(config, task)
            service = RobotService(backend, config)
        except ValueError as exc:  # an unknown task, or a clock the backend cannot run
            raise ConfigError(f"cannot serve the {config.backend} backend (task {task!r}): {exc}") from None
        socket = context.socket(zmq.ROUTER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.MAXMSGSIZE, _ZMQ_MAX_MESSAGE_BYTES)
        try:
            auth = secure_bind(socket, _bind_endpoint(config.address), config.curve, config_key="robot_server.curve")
        except (zmq.ZMQError, CurveKeyError) as exc:
            socket.close(linger=0)
            raise ConfigError(f"cannot bind {config.address}: {exc}") from None
        server = RobotServer(service, socket)
        endpoint = socket.getsockopt_string(zmq.LAST_ENDPOINT)
        log.info(
            "robot server %s: backend %s, task %r, clock %s, listening on %s",
            server.server_id, backend.name, backend.task, config.clock, endpoint,
        )
        if on_ready is not None:
            on_ready(endpoint)
        server.run(stop_event)
        log.info("robot server stopping")
    finally:
        if server is not None:
            server.close()
        if backend is not None:
            try:
                backend.close()
            except Exception:
                log.exception("backend failed to close")
        if auth is not None:
            auth.stop()
        context.term()
        for sig, handler in restore.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------------------------- command line


def load_config(path: str | None) -> ServerConfig:
    """The `robot_server:` section of a task YAML file (defaults when `path` is None).

    Raises:
        ConfigError: unreadable file, invalid YAML, or a key that does not fit (the key is named).
    """
    return load_task_config(path)[0]


def load_task_config(path: str | None) -> tuple[ServerConfig, str]:
    """(`robot_server:` section, `task:` name) of a task YAML file; (defaults, "") for None.

    Raises:
        ConfigError: unreadable file, invalid YAML, or a key that does not fit (the key is named).
    """
    if path is None:
        return ServerConfig(), ""
    from hilrl.transport.config import load_document, section  # only the CLI reads YAML

    try:
        doc = load_document(path)
        return section(doc, "robot_server", ServerConfig), doc.get("task", "")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except SchemaError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve one arm (simulated or real) to robot clients over ZeroMQ, with the "
        "server-side safety layer. Flags override the --config file.",
    )
    parser.add_argument("--backend", choices=["sim", "franka"], help="arm backend (default: config, else sim)")
    parser.add_argument("--task", help="sim task: reach, pick_cube or peg_insert (default: the config's task:)")
    parser.add_argument("--port", type=int, help="TCP port to bind (0: any free port, printed at start)")
    parser.add_argument("--host", help="loopback address to bind (default: config, else 127.0.0.1)")
    parser.add_argument("--clock", choices=["realtime", "lockstep"], help="physics clock (default: config, else lockstep)")
    parser.add_argument("--config", metavar="FILE", help="task YAML file; its robot_server: section is used")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def config_from_args(args: argparse.Namespace) -> tuple[ServerConfig, str]:
    """(config, task) from the config file (if any) with command-line overrides applied.

    Raises:
        ConfigError: a bad file or flag, or no task for the sim backend.
    """
    config, task = load_task_config(args.config)
    task = args.task or task
    changes: dict[str, Any] = {}
    if args.backend is not None:
        changes["backend"] = args.backend
    if args.clock is not None:
        changes["clock"] = args.clock
    if args.host is not None or args.port is not None:
        try:
            host, port = split_tcp_address(config.address)
        except ConfigError:
            host, port = "127.0.0.1", "5555"  # config named an ipc:// endpoint
        if args.host is not None:
            host = f"[{args.host}]" if ":" in args.host and not args.host.startswith("[") else args.host
        if args.port is not None:
            if not 0 <= args.port <= 65535:
                raise ConfigError(f"--port {args.port} is not a TCP port (0..65535)")
            port = str(args.port)
        changes["address"] = f"tcp://{host}:{port}"
    if changes:
        config = dataclasses.replace(config, **changes)
    if config.backend == "sim" and not task:
        raise ConfigError("the sim backend needs a task: --task reach|pick_cube|peg_insert, or task: in --config")
    return config, task


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """`hilrl robot-server ...`: returns the process exit code (2 for configuration errors)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    name = parser.prog
    try:
        config, task = config_from_args(args)
        check_loopback(config.address, config.curve)
    except ConfigError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2

    def announce(endpoint: str) -> None:
        # One stable line on stdout so scripts and tests can wait for readiness and learn the port.
        print(f"robot server listening on {endpoint}", flush=True)

    try:
        serve(config, task, on_ready=announce)
    except ConfigError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
