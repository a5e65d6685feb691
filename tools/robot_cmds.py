"""`hilrl robot-stop` and `hilrl clear-errors`: an operator's stop and resume, from any terminal.

    hilrl robot-stop   --config FILE [--reason TEXT] [overrides...]
    hilrl clear-errors --config FILE [overrides...]

Both talk to the robot server at the config's `robot_server.address` (with its
`request_timeout_s` and `curve`), as any client would: no actor needs to run.

robot-stop sends `stop`: the server holds the arm where it is and latches "operator_stop: REASON"
until a clear errors; motion requests (every actor's) are refused meanwhile. The server never
refuses a stop. Prints one line with what is latched afterwards. It is no emergency stop: it needs
the robot server and the network; the robot's own stop button needs neither.

clear-errors reads the state, prints what is latched (or "nothing latched"), sends clear errors
(on a Franka, libfranka's error recovery), and prints what is still latched: a cause that
persists stays latched, e.g. a Franka user stop (the external activation device) still pressed.
After a clear, restart the actor: one stopped by its operator has exited.

Exit status: 0 done (clear-errors: nothing latched afterwards); 1 the server did not answer (the
message names its address), refused the request, or (clear-errors) errors are still latched;
2 a bad config (unknown file, invalid section or override, non-loopback address without keys).
"""

from __future__ import annotations

import argparse
import shlex
import socket
import sys
from collections.abc import Callable, Sequence

import zmq

from hilrl.robot_server.client import RobotClient
from hilrl.robot_server.config import ServerConfig
from hilrl.robot_server.interface import RobotServerError, RobotUnreachableError
from hilrl.transport.config import load_document, section
from hilrl.transport.robot_messages import RobotState
from hilrl.transport.schema import SchemaError

# What the Franka backend's error names start with while its user stop is pressed.
USER_STOP_PREFIX = "user_stop"


def _parser(prog: str | None, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", required=True, help="task YAML file or shipped config name: its robot_server section")
    return parser


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. robot_server.address=tcp://127.0.0.1:5555")


def _connect(prog: str, config: str, overrides: Sequence[str]) -> tuple[RobotClient | None, ServerConfig | None, int]:
    """(client, server config, 0), or (None, None, exit status) after printing why not."""
    try:
        server = section(load_document(config, overrides), "robot_server", ServerConfig)
        return RobotClient(server.address, timeout_s=server.request_timeout_s, curve=server.curve), server, 0
    except (SchemaError, FileNotFoundError, ValueError) as exc:  # ValueError: curve keys, insecure address
        print(f"{prog}: error: {exc}", file=sys.stderr)
    except zmq.ZMQError as exc:
        print(f"{prog}: error: robot_server.address: cannot connect ({exc})", file=sys.stderr)
    return None, None, 2


def _errors(state: RobotState) -> str:
    return "; ".join(state.errors) if state.errors else "nothing latched"


def _run(prog: str, config: str, overrides: Sequence[str], body: Callable[[RobotClient, ServerConfig], int],
         unreachable_note: str) -> int:
    """Connect, run `body`, turn the robot's errors into one line on stderr and exit 1."""
    client, server, status = _connect(prog, config, overrides)
    if client is None or server is None:
        return status
    try:
        return body(client, server)
    except RobotUnreachableError:
        print(
            f"{prog}: error: no reply from the robot server at {server.address} ({client.retries} tries of "
            f"{server.request_timeout_s:g} s each); {unreachable_note}. Is `hilrl robot-server` running there "
            "(a config with env.connection: inprocess runs its sim inside the actor instead)?",
            file=sys.stderr,
        )
        return 1
    except RobotServerError as exc:
        print(f"{prog}: error: the robot server at {server.address} refused: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()


# ---------------------------------------------------------------------------- robot-stop


def default_reason() -> str:
    try:
        host = socket.gethostname()
    except OSError:
        host = ""
    return f"hilrl robot-stop on {host}" if host else "hilrl robot-stop"


def main_stop(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = _parser(prog, "Stop the arm: the robot server holds it and latches operator_stop until `hilrl clear-errors`.")
    parser.add_argument("--reason", help="who or why, shown in the latched error and the server's log "
                        "(default: 'hilrl robot-stop on HOST'; at most 200 characters)")
    _add_overrides(parser)
    args = parser.parse_args(argv)
    reason = default_reason() if args.reason is None else args.reason
    if len(reason) > 200:
        parser.error(f"--reason is {len(reason)} characters; at most 200")

    def stop(client: RobotClient, server: ServerConfig) -> int:
        state = client.stop(reason)
        again = shlex.join(["hilrl", "clear-errors", "--config", args.config, *args.overrides])
        print(f"robot at {server.address} stopped (holding); latched: {_errors(state)}; resume with "
              f"`{again}`, then restart the actor", flush=True)
        return 0

    return _run(parser.prog, args.config, args.overrides, stop,
                "the stop was NOT delivered: use the robot's own stop button if the arm must stop now")


# ---------------------------------------------------------------------------- clear-errors


def main_clear(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = _parser(prog, "Clear the robot server's latched errors (an operator stop, reflexes, limits); "
                     "prints what was latched and what still is.")
    _add_overrides(parser)
    args = parser.parse_args(argv)

    def clear(client: RobotClient, server: ServerConfig) -> int:
        before = client.state()
        print(f"robot at {server.address}: latched before: {_errors(before)}", flush=True)
        after = client.clear_errors()
        if not after.errors:
            print("cleared: nothing latched now; the arm accepts motion again (restart the actor)", flush=True)
            return 0
        print(f"still latched after clear_errors: {_errors(after)}", flush=True)
        if any(e.startswith(USER_STOP_PREFIX) for e in after.errors):
            hint = "the robot's user stop is still pressed: release it, then run this again"
        else:
            hint = "the cause persists: make the cell safe (free the arm), then run this again"
        print(f"{parser.prog}: {hint}", file=sys.stderr, flush=True)
        return 1

    return _run(parser.prog, args.config, args.overrides, clear, "nothing was cleared")

