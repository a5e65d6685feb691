"""`hilrl keys --out DIR [--clients N]`: CurveZMQ keys for binding beyond loopback.

Writes

    DIR/learner.key                     server public key  (every machine)
    DIR/learner.key_secret              server secret key  (the learner's machine only)
    DIR/clients/actor-I.key_secret      client I's key pair (actor I's machine only)
    DIR/authorized_clients/actor-I.key  client public keys the server accepts (server only)

and prints the YAML for the `link.curve` section. Revoke a client by deleting its file from
authorized_clients (the server reads the folder when it binds). The same layout serves the robot
server (`--server-name robot_server`, section `robot_server.curve`).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from hilrl.transport.security import generate_keys


def write_key_set(out: Path, clients: int, server_name: str = "learner") -> dict[str, Path]:
    """Create the server and `clients` client key pairs under `out` (layout in the module docstring).

    Returns:
        paths: "server_public_key", "server_secret_key", "authorized_clients_dir", and
        "client_public_key:I" / "client_secret_key:I" for I in 1..clients.
    Raises:
        FileExistsError: a key of that name already exists.
    """
    names = [f"actor-{i}" for i in range(1, clients + 1)]
    clients_dir, authorized = out / "clients", out / "authorized_clients"
    for name in names:  # check everything before writing anything
        for path in (clients_dir / f"{name}.key", clients_dir / f"{name}.key_secret", authorized / f"{name}.key"):
            if path.exists():
                raise FileExistsError(f"{path} exists; refusing to overwrite a key")
    server = generate_keys(out, [server_name])[server_name]
    pairs = generate_keys(clients_dir, names)
    authorized.mkdir(parents=True, exist_ok=True)
    paths = {
        "server_public_key": server[0],
        "server_secret_key": server[1],
        "authorized_clients_dir": authorized,
    }
    for i, name in enumerate(names, start=1):
        shutil.copyfile(pairs[name][0], authorized / f"{name}.key")
        paths[f"client_public_key:{i}"] = pairs[name][0]
        paths[f"client_secret_key:{i}"] = pairs[name][1]
    return paths


def yaml_snippet(paths: dict[str, Path], section: str = "link", client: int = 1) -> str:
    """The config snippet for one client's view (every field; each process reads the ones it needs)."""
    def q(p: Path) -> str:
        return f'"{p.resolve()}"'

    return (
        f"{section}:\n"
        f"  curve:\n"
        f"    server_public_key: {q(paths['server_public_key'])}\n"
        f"    server_secret_key: {q(paths['server_secret_key'])}  # server machine only\n"
        f"    authorized_clients_dir: {q(paths['authorized_clients_dir'])}  # server machine only\n"
        f"    client_public_key: {q(paths[f'client_public_key:{client}'])}  # actor-{client}'s machine only\n"
        f"    client_secret_key: {q(paths[f'client_secret_key:{client}'])}  # actor-{client}'s machine only\n"
    )


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Entry point of `hilrl keys`; returns the exit code (2 for usage errors)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Generate CurveZMQ key pairs (a server and N clients) for links that bind beyond "
        "loopback, and print the config snippet.",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write the keys into")
    parser.add_argument("--clients", type=int, default=1, metavar="N", help="client key pairs to create (default 1)")
    parser.add_argument("--server-name", default="learner", help="server key name (default learner; robot_server for a robot server)")
    parser.add_argument("--section", default="link", help="config section the snippet is for (link or robot_server)")
    args = parser.parse_args(argv)
    name = parser.prog
    if args.clients < 1:
        print(f"{name}: error: --clients must be >= 1", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:
        paths = write_key_set(out, args.clients, args.server_name)
    except FileExistsError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    print(f"# CurveZMQ keys written to {out.resolve()}")
    print("# Copy each secret key only to the machine that uses it. Add this to the task config:")
    print(yaml_snippet(paths, args.section, 1), end="")
    if args.clients > 1:
        print(f"# actors 2..{args.clients}: the same, with client_*_key pointing at clients/actor-I.key*")
    return 0


if __name__ == "__main__":
    sys.exit(main())
