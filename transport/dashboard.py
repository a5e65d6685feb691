"""The live dashboard's shared parts: the `dashboard:` config section and one process's rerun
recording (`Dashboard`), used by the actor (hilrl.actor.dashboard.ActorDashboard) and the learner
(hilrl.learner.dashboard.LearnerDashboard); each process keeps what it logs.

    dashboard:                    # the config section (`DashboardConfig`)
      enabled: true
      mode: save                  # save | spawn | serve

Each process (actor, learner) owns one `Dashboard`: an explicit `rerun.RecordingStream` (never
rerun's global recording) that always writes RUN_DIR/dashboard/<process>.rrd and, in the live
modes, also streams to a rerun viewer. Actor and learner share one recording id (derived from the
run directory), so a viewer shows them as one recording: `rerun RUN_DIR/dashboard/*.rrd` merges the
saved files, and in `spawn` / `serve` both processes stream into the same viewer.

A dashboard must never slow or stop the robot: logging is asynchronous in rerun (a call costs
tens of microseconds; images are subsampled in time and space), every hook catches its own
errors (the first is logged, the rest counted), and when the section is disabled, rerun cannot be
imported or the recording cannot be opened, every hook is a no-op.

The `--dashboard {save,spawn,serve,off}` flag of `hilrl run`, `hilrl actor` and `hilrl learner`
becomes the overrides `dashboard_overrides` returns.
"""


from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import logging
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import numpy as np

log = logging.getLogger(__name__)

APPLICATION_ID = "hilrl"
DASHBOARD_CHOICES = ("save", "spawn", "serve", "off")


@dataclass
class DashboardConfig:
    """The `dashboard:` section: what each process shows in rerun, and where.

    Attributes:
        enabled: false turns the dashboard off: nothing is written and rerun is not imported.
        mode: "save": each process writes RUN_DIR/dashboard/<process>.rrd (actor.rrd,
            learner.rrd; a restarted process writes actor-2.rrd, ...); open them together with
            `rerun RUN_DIR/dashboard/*.rrd`. "spawn": also stream live to a native rerun viewer
            on this machine (started, detached, when none listens on `viewer_port`). "serve":
            also stream live to a rerun server with a web viewer at http://<bind>:<web_port>
            for a browser (started, detached, when none listens). The .rrd files are written in
            every mode; a started viewer or server stays open after training ends.
        log_images_every_steps: actor: camera images are logged every this many env steps
            (images are most of a recording's size); 0 logs none.
        max_image_size_px: actor: a logged image is subsampled by an integer stride until its
            longer side is at most this many pixels.
        log_every_updates: learner: losses, Q values, temperature and entropy every this many
            gradient updates (throughput, buffer sizes and weights versions are logged once a
            second, with the learner's progress file).
        bind: address the started viewer (spawn) or server (serve) listens on. Loopback by
            default: anything else exposes the dashboard to the network without authentication.
        viewer_port: TCP port of the viewer's (spawn) or server's (serve) gRPC endpoint, which the
            processes stream to.
        web_port: serve only: TCP port of the web viewer's HTTP server.
        viewer_start_timeout_s: how long a process waits at startup for the viewer to listen,
            seconds; after that it records to its file alone (with a warning).
        recording_id: rerun recording id shared by actor and learner; null derives it from the
            run directory's absolute path (the same for the actor and learner of one `hilrl run`).
    """

    enabled: bool = True
    mode: Literal["save", "spawn", "serve"] = "save"
    log_images_every_steps: int = 10
    max_image_size_px: int = 128
    log_every_updates: int = 10
    bind: str = "127.0.0.1"
    viewer_port: int = 9876
    web_port: int = 9090
    viewer_start_timeout_s: float = 10.0
    recording_id: str | None = None

    def __post_init__(self) -> None:
        if self.log_images_every_steps < 0:
            raise ValueError("log_images_every_steps must be >= 0")
        if self.max_image_size_px < 8:
            raise ValueError("max_image_size_px must be >= 8")
        if self.log_every_updates < 1:
            raise ValueError("log_every_updates must be >= 1")
        for name in ("viewer_port", "web_port"):
            if not 1 <= getattr(self, name) <= 65535:
                raise ValueError(f"{name} must be a TCP port in 1..65535")
        if self.viewer_start_timeout_s <= 0:
            raise ValueError("viewer_start_timeout_s must be > 0")
        if not self.bind:
            raise ValueError("bind must be an IP address")


# ---------------------------------------------------------------------------------- command line


def add_dashboard_argument(parser: argparse.ArgumentParser) -> None:
    """The `--dashboard` flag shared by `hilrl run`, `hilrl actor` and `hilrl learner`."""
    parser.add_argument(
        "--dashboard", choices=DASHBOARD_CHOICES,
        help="rerun dashboard: save (RUN_DIR/dashboard/*.rrd), spawn (native viewer), serve (browser), "
             "off; overrides the config's dashboard section",
    )


def dashboard_overrides(choice: str | None) -> list[str]:
    """The dotted overrides a `--dashboard` choice stands for (none without the flag)."""
    if choice is None:
        return []
    if choice == "off":
        return ["dashboard.enabled=false"]
    return ["dashboard.enabled=true", f"dashboard.mode={choice}"]


def describe(config: DashboardConfig, run_dir: Path | None = None) -> str:
    """One line telling a person where to look."""
    if not config.enabled:
        return "off"
    saved = f"rerun {run_dir / 'dashboard'}/*.rrd" if run_dir is not None else "rerun RUN_DIR/dashboard/*.rrd"
    host = "127.0.0.1" if config.bind in ("0.0.0.0", "::") else config.bind
    if config.mode == "spawn":
        return f"live in the rerun viewer on {host}:{config.viewer_port}; saved: {saved}"
    if config.mode == "serve":
        url = quote(f"rerun+http://{host}:{config.viewer_port}/proxy", safe="")
        return f"live at http://{host}:{config.web_port}/?url={url}; saved: {saved}"
    return f"saved; open with: {saved}"


def default_recording_id(run_dir: Path) -> str:
    """One id per run directory: readable (its name) and unique (a hash of its absolute path)."""
    resolved = run_dir.resolve()
    return f"{resolved.name}-{hashlib.sha256(str(resolved).encode()).hexdigest()[:8]}"


def subsample_image(image: np.ndarray, max_size_px: int) -> np.ndarray:
    """Every k-th pixel (k the smallest integer that brings the longer side to <= max_size_px):
    no resampling library, no copy (a strided view)."""
    stride = max(1, math.ceil(max(image.shape[:2]) / max_size_px))
    return image[::stride, ::stride] if stride > 1 else image


# ---------------------------------------------------------------------------------- recording


class Dashboard:
    """One process's recording: opens the sinks, guards every call.

    Args:
        config: the `dashboard:` section.
        run_dir: the run directory; the recording goes to RUN_DIR/dashboard/.
        process: "actor" or "learner": the file name and the entity path prefix.
        task: the task name, shown as the recording's name.

    Attributes:
        path: the .rrd file being written (None when inactive).
        viewer: the viewer or server this process started (None when it started none); it is
            left running when the process ends.
    """

    def __init__(self, config: DashboardConfig, run_dir: Path, process: str, task: str = ""):
        self.config = config
        self.process = process
        self.path: Path | None = None
        self.viewer: subprocess.Popen | None = None
        self.failures = 0
        self._stream: Any = None
        self._rr: Any = None
        if not config.enabled:
            return
        try:
            import rerun
        except ImportError as exc:
            log.warning("dashboard off: rerun cannot be imported (%s); training goes on without it", exc)
            return
        try:
            self._stream = self._open(rerun, run_dir, task)
            self._rr = rerun
        except Exception as exc:  # an old or broken rerun, an unwritable folder: not worth a run
            log.warning("dashboard off: could not open the recording (%s); training goes on without it", exc)
            self._stream = None

    @property
    def active(self) -> bool:
        return self._stream is not None

    @property
    def rr(self) -> Any:
        """The rerun module (for archetypes); only valid while `active`."""
        return self._rr

    def _open(self, rr: Any, run_dir: Path, task: str) -> Any:
        folder = run_dir / "dashboard"
        folder.mkdir(parents=True, exist_ok=True)
        self.path = _unused_path(folder, self.process)
        stream = rr.RecordingStream(APPLICATION_ID, recording_id=self.config.recording_id or default_recording_id(run_dir))
        sinks = [rr.FileSink(str(self.path))]
        if self.config.mode != "save":
            url = self._viewer(folder)
            if url is not None:
                sinks.append(rr.GrpcSink(url))
        stream.set_sinks(*sinks)
        stream.send_recording_name(f"{task or 'hilrl'} {run_dir.resolve().name}")
        log.info("dashboard: %s recording to %s", self.process, self.path)
        return stream

    def _viewer(self, folder: Path) -> str | None:
        """The viewer's gRPC URL, starting the viewer (or server) when nothing listens yet; None
        (file only) when none comes up within `viewer_start_timeout_s`."""
        c = self.config
        # A viewer bound to every interface is reached through loopback.
        host = "127.0.0.1" if c.bind in ("0.0.0.0", "::") else c.bind
        url = f"rerun+http://{host}:{c.viewer_port}/proxy"
        # Actor and learner start together: a lock per port keeps them from starting two viewers.
        with _port_lock(c.viewer_port):
            if not _listening(host, c.viewer_port):
                proc = _start_viewer(c, folder / f"viewer-{self.process}.log")
                if proc is None:
                    log.warning("dashboard: no rerun executable found; recording to %s only", self.path)
                    return None
                self.viewer = proc
                deadline = time.monotonic() + c.viewer_start_timeout_s
                while not _listening(host, c.viewer_port) and time.monotonic() < deadline and proc.poll() is None:
                    time.sleep(0.1)
            if not _listening(host, c.viewer_port):
                log.warning(
                    "dashboard: no rerun viewer listening on %s:%d (no display? see %s); recording to %s only",
                    host, c.viewer_port, folder, self.path,
                )
                return None
        log.info("dashboard: %s", describe(c, folder.parent))
        return url

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Run a block of logging calls; a failure is logged once (then counted), never raised."""
        try:
            yield
        except Exception as exc:
            self.failures += 1
            if self.failures == 1:
                log.warning("dashboard: logging failed (%s); the loop goes on, later failures are only counted",
                            exc, exc_info=True)

    # Thin wrappers: call them inside `guard()`.

    def set_time(self, **sequences: int) -> None:
        """Position on each named sequence timeline (e.g. step=..., update=...) and on wall_time."""
        for timeline, value in sequences.items():
            self._stream.set_time(timeline, sequence=int(value))
        self._stream.set_time("wall_time", timestamp=time.time())

    def scalar(self, path: str, value: float | Sequence[float] | np.ndarray) -> None:
        """One value, or one per series (e.g. per action dimension)."""
        self._stream.log(path, self._rr.Scalars(np.asarray(value, dtype=np.float64)))

    def series_names(self, path: str, names: Sequence[str]) -> None:
        """Name the series of a multi-valued scalar entity (static: once is enough)."""
        self._stream.log(path, self._rr.SeriesLines(names=list(names)), static=True)

    def image(self, path: str, image: np.ndarray) -> None:
        self._stream.log(path, self._rr.Image(subsample_image(image, self.config.max_image_size_px)))

    def text(self, path: str, message: str, level: str = "INFO") -> None:
        self._stream.log(path, self._rr.TextLog(message, level=level))

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush and close the sinks (bounded wait), and report failures if there were any."""
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            stream.flush(timeout_sec=timeout_s)
        except Exception as exc:  # e.g. the viewer went away: the file sink is still closed below
            log.warning("dashboard: flush failed (%s)", exc)
        try:
            stream.disconnect()
        except Exception as exc:
            log.warning("dashboard: close failed (%s)", exc)
        if self.failures:
            log.warning("dashboard: %d logging call(s) failed in all", self.failures)


def _unused_path(folder: Path, process: str) -> Path:
    """folder/process.rrd, or process-2.rrd, ... when a restarted process finds it taken."""
    path, n = folder / f"{process}.rrd", 1
    while path.exists():
        n += 1
        path = folder / f"{process}-{n}.rrd"
    return path


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _port_lock(port: int) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: two processes may race to start a viewer; the loser exits
        yield
        return
    with open(Path(tempfile.gettempdir()) / f"hilrl-rerun-{port}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _rerun_executable() -> str | None:
    """The viewer binary shipped with rerun-sdk (not its Python wrapper, which would outlive
    nothing useful and hide the viewer's pid), else `rerun` on PATH."""
    spec = importlib.util.find_spec("rerun_cli")
    if spec is not None and spec.origin:
        binary = Path(spec.origin).parent / ("rerun.exe" if sys.platform.startswith("win") else "rerun")
        if binary.exists():
            return str(binary)
    return shutil.which("rerun")


def _start_viewer(config: DashboardConfig, log_path: Path) -> subprocess.Popen | None:
    """Start a detached viewer (spawn) or gRPC + web server (serve) bound to `config.bind`.
    rerun's own `spawn()` cannot choose the bind address (it listens on every interface)."""
    exe = _rerun_executable()
    if exe is None:
        return None
    args = [exe, "--bind", config.bind, "--port", str(config.viewer_port)]
    if config.mode == "serve":
        args += ["--serve-web", "--web-viewer-port", str(config.web_port)]
    else:
        args += ["--expect-data-soon"]
    # As rerun's spawn() does: the viewer runs as an app for the SDK (no first-run prompts).
    env = {**os.environ, "RERUN_APP_ONLY": "true"}
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,  # outlives this process, and a Ctrl-C meant for training
        )


# ---------------------------------------------------------------------------------- the actor's view
