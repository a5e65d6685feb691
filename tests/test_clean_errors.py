"""Expected failures of hand-started processes are one clear line naming the cause and the fix,
with a non-zero exit and no traceback: a port in use, a run directory that is a file, a resume of
a run that does not exist or is not a learner's, address overrides `hilrl run` cannot honour."""

from __future__ import annotations

import socket

import pytest


def _clean(done, code: int, *fragments: str) -> None:
    assert done.returncode == code, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    for fragment in fragments:
        assert fragment in done.stderr, (fragment, done.stderr[-2000:])


@pytest.mark.timeout(120)
def test_the_learner_names_a_port_in_use_and_the_key_to_change(tmp_path, hilrl):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = hilrl("learner", "--config", "sim_reach", "--run-dir", str(tmp_path / "run"),
                     f"link.address=tcp://127.0.0.1:{port}")
    _clean(done, 1, f"link.address tcp://127.0.0.1:{port} is in use", "link.address=tcp://127.0.0.1:PORT")


@pytest.mark.timeout(120)
def test_run_directories_that_are_not_one(tmp_path, hilrl):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a run")
    for command in ("learner", "actor", "run"):
        done = hilrl(command, "--config", "sim_reach", "--run-dir", str(a_file))
        _clean(done, 2, f"{a_file} is a file, not a run directory")
    _clean(hilrl("learner", "--resume", str(tmp_path / "nowhere")), 2, "no such run directory to resume",
           f"--config FILE --run-dir {tmp_path / 'nowhere'}")
    (tmp_path / "empty").mkdir()
    _clean(hilrl("learner", "--resume", str(tmp_path / "empty")), 2, "has no saved config (config.json)")


@pytest.mark.timeout(60)
def test_run_refuses_address_overrides_it_would_ignore(tmp_path, hilrl):
    done = hilrl("run", "--config", "sim_reach", "--run-dir", str(tmp_path / "r"), "link.address=tcp://127.0.0.1:7000")
    _clean(done, 2, "link.address=tcp://127.0.0.1:7000", "picks free loopback ports", "hilrl robot-server")
    assert not (tmp_path / "r").exists()
