"""A learner-side process for the restart tests: a LearnerLink that stores and consumes chunks.

Usage: python tests/transport/learner_proc.py --address tcp://127.0.0.1:0 --store DIR --session ID
    [--drop-acks-from-seq N]
Prints "ready ENDPOINT" once bound; runs until SIGTERM (or SIGKILL, which is the point); logs
"consumed N chunks, D duplicates" on SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE.parents[1]), str(_HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from link_support import fast_config, make_hello  # noqa: E402

from hilrl.transport.link import LearnerLink  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--session", required=True)
    parser.add_argument("--heartbeat-s", type=float, default=0.05)
    parser.add_argument("--peer-timeout-s", type=float, default=0.4)
    parser.add_argument("--drop-acks-from-seq", type=int, default=0,
                        help="store chunks from this seq on but never ack them (acks lost in a crash)")
    args = parser.parse_args()
    if args.drop_acks_from_seq:
        send_ack = LearnerLink._ack

        def _ack(self, identity, key):
            if key[1] < args.drop_acks_from_seq:
                send_ack(self, identity, key)

        LearnerLink._ack = _ack
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    config = fast_config(args.address, heartbeat_s=args.heartbeat_s, peer_timeout_s=args.peer_timeout_s)
    link = LearnerLink(config, make_hello(), Path(args.store), args.session)
    link.start()
    print(f"ready {link.endpoint}", flush=True)
    consumed = 0
    try:
        while not stop.wait(0.005):
            consumed += len(link.poll_chunks())
    finally:
        link.close()
    logging.info("consumed %d chunks, %d duplicates", consumed, link.duplicates)
    return 0


if __name__ == "__main__":
    sys.exit(main())
