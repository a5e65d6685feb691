"""Fixtures for the transport tests: links on free loopback ports, closed at teardown."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE.parents[1]), str(_HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from link_support import LearnerProcess, fast_config, make_hello  # noqa: E402

from hilrl.transport.link import ActorLink, LearnerLink  # noqa: E402


@pytest.fixture
def learners(tmp_path):
    """`learners(store=None, expected=None, session=..., **config)` -> started LearnerLink."""
    started: list[LearnerLink] = []

    def start(store: Path | None = None, expected=None, session: str | None = None, config=None, **kwargs):
        link = LearnerLink(config or fast_config(), expected or make_hello(),
                           store or tmp_path / f"store{len(started)}", session or f"learner-{len(started)}", **kwargs)
        started.append(link)
        link.start()
        return link

    yield start
    for link in started:
        link.close()


@pytest.fixture
def actors(tmp_path):
    """`actors(address, hello=None, spool=None, start=True, **config)` -> ActorLink."""
    started: list[ActorLink] = []

    def make(address: str, hello=None, spool: Path | None = None, start: bool = True, config=None, **changes):
        link = ActorLink(config or fast_config(address, **changes), hello or make_hello(f"actor-{len(started)}"),
                         spool or tmp_path / f"spool{len(started)}")
        started.append(link)
        if start:
            link.start()
        return link

    yield make
    for link in started:
        link.close(flush_timeout_s=0)


@pytest.fixture
def learner_procs():
    """`learner_procs(address, store, session, config)` -> LearnerProcess; all stopped at teardown."""
    started: list[LearnerProcess] = []

    def start(address: str, store: Path, session: str, config=None, extra_args=()) -> LearnerProcess:
        proc = LearnerProcess(address, store, session, config or fast_config(), extra_args=extra_args)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
        # Shown by pytest only when the test failed.
        print(f"---- {proc.log_path.name} (exit {proc.proc.returncode}) ----\n{proc.log_tail()}")
