"""CurveZMQ for every socket we bind or connect: loopback may run in the clear, anything else is
encrypted and authenticated.

Policy:
    - Loopback endpoints (tcp:// on 127.0.0.0/8, ::1 or localhost; ipc://; inproc://) may run
      without keys: only this machine reaches them.
    - Any other bind address without a `CurveConfig` is refused *before* binding, with an error
      naming the address and pointing at `hilrl keys`. Connecting to a non-loopback address without
      keys is refused the same way (the server there would not talk to us anyway).
    - With a `CurveConfig`, the binding side is a CURVE server (the ZeroMQ guide's "Ironhouse"
      pattern): it proves its identity with its secret key, and a ZAP handler
      (`zmq.auth.thread.ThreadAuthenticator`) admits only clients whose public key file is in
      `authorized_clients_dir`. Clients pin the server's public key. Traffic is encrypted.

Key files are ZeroMQ certificates (`zmq.auth.create_certificates`): NAME.key holds the public key,
NAME.key_secret both keys. They are plain text; loading one never runs code.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from hilrl.transport.link_config import CurveConfig

log = logging.getLogger(__name__)

_TCP = re.compile(r"^tcp://(?P<host>\[[^\]]+\]|[^:/;]+):(?P<port>\d+|\*)$")


class InsecureAddressError(ValueError):
    """An endpoint other machines could reach, with no CurveZMQ keys configured."""


class CurveKeyError(ValueError):
    """A CurveZMQ key file or folder is missing, unreadable, or lacks a needed key."""


def is_loopback(address: str) -> bool:
    """True for endpoints only this machine can reach: tcp:// on a loopback IP or localhost,
    ipc://, inproc://. Hostnames, interface names and wildcards are not (provably) loopback."""
    if address.startswith(("ipc://", "inproc://")):
        return True
    m = _TCP.match(address)
    if m is None:
        return False
    host = m["host"].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_curve_or_loopback(address: str, curve: CurveConfig | None, *, config_key: str = "link.curve",
                              verb: str = "bind") -> None:
    """Raise InsecureAddressError when `address` is not loopback and `curve` is None.

    Args:
        address: the ZeroMQ endpoint.
        curve: the configured keys, if any.
        config_key: dotted config key of the curve section, named in the error.
        verb: "bind" or "connect to", for the message.
    """
    if curve is not None or is_loopback(address):
        return
    raise InsecureAddressError(
        f"refusing to {verb} {address}: it is not a loopback address (127.0.0.1, ::1, localhost, "
        f"ipc://, inproc://), and traffic that other machines can reach must be encrypted and "
        f"authenticated with CurveZMQ keys. Generate them with `hilrl keys --out DIR` and put the "
        f"printed snippet in `{config_key}`; or keep the address on loopback (tunnel it with ssh -L)."
    )


def _zmq_endpoint(address: str) -> str:
    """ZeroMQ spelling for binding: port 0 means any free port ('*')."""
    m = _TCP.match(address)
    if m is not None and m["port"] == "0":
        return f"tcp://{m['host']}:*"
    return address


def _load(path: str | None, what: str, need_secret: bool) -> tuple[bytes, bytes | None]:
    if not path:
        raise CurveKeyError(f"{what} is required here but not set")
    p = Path(path).expanduser()
    if not p.is_file():
        raise CurveKeyError(f"{what}: no key file at {p} (create keys with `hilrl keys --out DIR`)")
    try:
        public, secret = zmq.auth.load_certificate(p)
    except (OSError, ValueError) as exc:
        raise CurveKeyError(f"{what}: cannot read a ZeroMQ certificate from {p}: {exc}") from None
    if not public or (need_secret and not secret):
        raise CurveKeyError(f"{what}: {p} lacks the {'secret' if need_secret else 'public'} key")
    return public, secret


def _prepare(socket: zmq.Socket, address: str) -> None:
    if "[" in address:
        socket.setsockopt(zmq.IPV6, 1)


def secure_bind(socket: zmq.Socket, address: str, curve: CurveConfig | None,
                *, config_key: str = "link.curve") -> ThreadAuthenticator | None:
    """Bind `socket` to `address`, as a CURVE server when `curve` is given.

    The address check fires before anything is bound. With keys, a ZAP authenticator thread is
    started on the socket's context (one per context: ZeroMQ has one ZAP endpoint per context)
    that admits only the public keys in `curve.authorized_clients_dir`.

    Args:
        socket: an unbound socket.
        address: endpoint; "tcp://HOST:0" binds any free port (read it back with LAST_ENDPOINT).
        curve: keys (server_secret_key and authorized_clients_dir are needed), or None.
        config_key: dotted config key of `curve`, named in errors.
    Returns:
        the authenticator (the caller must `stop()` it after closing the socket), or None.
    Raises:
        InsecureAddressError: non-loopback address without keys.
        CurveKeyError: missing or unreadable key files.
        zmq.ZMQError: the bind itself failed (address in use, ...).
    """
    require_curve_or_loopback(address, curve, config_key=config_key)
    _prepare(socket, address)
    auth = None
    if curve is not None:
        public, secret = _load(curve.server_secret_key, f"{config_key}.server_secret_key", need_secret=True)
        clients = curve.authorized_clients_dir
        if not clients or not Path(clients).expanduser().is_dir():
            raise CurveKeyError(
                f"{config_key}.authorized_clients_dir must name a folder of client public keys (*.key); "
                f"got {clients!r}"
            )
        clients_dir = Path(clients).expanduser()
        if not any(clients_dir.glob("*.key")):
            log.warning("%s holds no client public keys (*.key): no client can connect", clients_dir)
        auth = ThreadAuthenticator(socket.context, log=logging.getLogger("hilrl.transport.security.zap"))
        auth.start()
        try:
            auth.configure_curve(domain="*", location=str(clients_dir))
            socket.curve_secretkey = secret
            socket.curve_publickey = public
            socket.curve_server = True
        except BaseException:
            auth.stop()
            raise
    try:
        socket.bind(_zmq_endpoint(address))
    except BaseException:
        if auth is not None:
            auth.stop()
        raise
    if curve is not None:
        log.info("bound %s with CurveZMQ (authorized clients: %s)", address, curve.authorized_clients_dir)
    return auth


def secure_connect(socket: zmq.Socket, address: str, curve: CurveConfig | None,
                   *, config_key: str = "link.curve") -> None:
    """Connect `socket` to `address`, as a CURVE client when `curve` is given.

    Args:
        socket: the socket.
        address: the server endpoint.
        curve: keys (server_public_key and client_secret_key are needed), or None.
        config_key: dotted config key of `curve`, named in errors.
    Raises:
        InsecureAddressError: non-loopback address without keys.
        CurveKeyError: missing or unreadable key files.
    """
    require_curve_or_loopback(address, curve, config_key=config_key, verb="connect to")
    _prepare(socket, address)
    if curve is not None:
        server_public, _ = _load(curve.server_public_key, f"{config_key}.server_public_key", need_secret=False)
        public, secret = _load(curve.client_secret_key, f"{config_key}.client_secret_key", need_secret=True)
        socket.curve_serverkey = server_public
        socket.curve_publickey = public
        socket.curve_secretkey = secret
    socket.connect(address)


def generate_keys(out_dir: str | Path, names: Sequence[str]) -> dict[str, tuple[Path, Path]]:
    """Write a CurveZMQ key pair per name into `out_dir`: NAME.key (public), NAME.key_secret
    (both keys; readable by the owner only).

    Returns:
        name -> (public key file, secret key file).
    Raises:
        FileExistsError: a key file of one of the names already exists (keys are never overwritten).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        for suffix in (".key", ".key_secret"):
            if (out / f"{name}{suffix}").exists():
                raise FileExistsError(f"{out / (name + suffix)} exists; refusing to overwrite a key")
    result = {}
    for name in names:
        public, secret = zmq.auth.create_certificates(out, name)
        os.chmod(secret, 0o600)
        result[name] = (Path(public), Path(secret))
    return result
