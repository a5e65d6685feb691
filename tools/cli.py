"""The `hilrl` command: a table of subcommands, each delegating to a `main(argv, prog)` in its package.

Subcommand modules are imported only when run, so `hilrl --help` stays fast and one subcommand's
heavy dependencies (MuJoCo, torch) never load for another. To add a subcommand, add a row to
`SUBCOMMANDS`; its module's `main(argv: list[str], prog: str) -> int` (or the function the row
names, for a module serving several commands) parses its own flags.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from hilrl.robot_server.process import stop_with_launcher


@dataclass(frozen=True)
class Subcommand:
    """One `hilrl` subcommand.

    Attributes:
        module: dotted module whose `main(argv, prog) -> int` runs it.
        help: one line for `hilrl --help`.
        function: the module's function to call instead of `main` (same signature).
    """

    module: str
    help: str
    function: str = "main"


SUBCOMMANDS: dict[str, Subcommand] = {
    "robot-server": Subcommand("hilrl.robot_server.server", "serve an arm (sim or real) with the server-side safety layer"),
    "run": Subcommand("hilrl.tools.run", "the main job: train on the simulated robot (server, learner, actor on loopback)"),
    "actor": Subcommand("hilrl.actor.loop", "run the actor: the policy on the robot, streaming to the learner"),
    "learner": Subcommand("hilrl.learner.main", "run the learner: SAC/RLPD training fed by actors"),
    "record-demos": Subcommand("hilrl.tools.demos", "record successful demonstrations (scripted expert in the sim, or an operator's SpaceMouse/keyboard)"),
    "eval": Subcommand("hilrl.tools.evaluate", "evaluate a run's checkpoint with the deterministic policy (RUN_DIR/eval/*.json)"),
    "browse": Subcommand("hilrl.tools.browse", "summarise a demo, label or run folder; export an episode's camera frames"),
    "record-labels": Subcommand("hilrl.tools.labels", "record camera frames labelled success / not, for the reward classifier"),
    "train-classifier": Subcommand("hilrl.tools.classifier_train", "train the reward classifier on recorded labels"),
    "keys": Subcommand("hilrl.tools.keys", "generate CurveZMQ keys for links that bind beyond loopback"),
    "configs": Subcommand("hilrl.tools.list_configs", "list the task configs shipped with hilrl (any works as --config NAME)"),
    "convert-encoder": Subcommand("hilrl.tools.convert_encoder", "convert a public pretrained checkpoint (HIL-SERL ResNet-10, torchvision ResNet-18) into encoder weights (.npz)"),
    "doctor": Subcommand("hilrl.tools.doctor", "pre-flight check: robot, gripper, cameras, intervention device, learner, config"),
    "robot-stop": Subcommand("hilrl.tools.robot_cmds", "stop the arm: the robot server holds it and latches operator_stop until clear-errors", "main_stop"),
    "clear-errors": Subcommand("hilrl.tools.robot_cmds", "show and clear the robot server's latched errors (after a stop, a reflex, a limit)", "main_clear"),
    "export": Subcommand("hilrl.tools.lerobot_io", "export demos or a run as a LeRobotDataset (v3.0: parquet, images, stats)", "main_export"),
    "import": Subcommand("hilrl.tools.lerobot_io", "import a LeRobotDataset (v3.0) as a demo folder for learner.demos", "main_import"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hilrl` console script; returns the exit code."""
    stop_with_launcher()  # a child of `hilrl run` stops when it does, even when it is SIGKILLed
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="hilrl",
        description="Human-in-the-loop RL for robot arms.",
        epilog="Run `hilrl COMMAND --help` for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, sub in SUBCOMMANDS.items():
        # add_help=False: the subcommand's own parser answers --help with its real options.
        commands.add_parser(name, help=sub.help, add_help=False)
    # Only the command name is parsed here; everything after it belongs to the subcommand.
    args, _ = parser.parse_known_args(argv[:1] or argv)
    sub = SUBCOMMANDS[args.command]
    run = getattr(importlib.import_module(sub.module), sub.function)
    return int(run(argv[1:], prog=f"hilrl {args.command}") or 0)


if __name__ == "__main__":
    sys.exit(main())
