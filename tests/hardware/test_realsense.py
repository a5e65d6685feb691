"""RealSense driver (hardware/realsense.py) against a fake pyrealsense2 (fake_realsense.py).

The driver code runs unchanged; only the module under it is fake. Small images (8x6) at 100 fps,
short stall limits and backoffs keep the file fast; every wait is bounded.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import time
from collections.abc import Callable

import numpy as np
import pytest
from fake_realsense import FakeDevice, make_fake_realsense, option, timestamp_domain

from hilrl.hardware.errors import CameraNotFoundError
from hilrl.hardware.realsense import RealSenseCamera, RealSenseRig, list_serials
from hilrl.transport.sections.realsense import RealSenseConfig

LOGGER = "hilrl.hardware.realsense"


def cfg(serial: str = "111", **kw) -> RealSenseConfig:
    """A fast camera config: 8x6 at 100 fps, stall after 0.15 s silence, 20 ms initial backoff."""
    base = dict(
        width_px=8,
        height_px=6,
        fps=100,
        max_frame_age_s=0.15,
        restart_backoff_s=0.02,
        restart_backoff_max_s=0.2,
        warmup_frames=0,
    )
    base.update(kw)
    return RealSenseConfig(serial=serial, **base)


def wait_until(pred: Callable[[], bool], timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


@pytest.fixture
def cameras():
    """Make cameras with `cameras(config, rs_module)`; all are stopped at teardown."""
    made: list[RealSenseCamera] = []

    def make(config: RealSenseConfig, rs) -> RealSenseCamera:
        cam = RealSenseCamera(config, rs_module=rs)
        made.append(cam)
        return cam

    yield make
    for cam in made:
        cam.stop()


# ---- config and discovery -----------------------------------------------------------------------


@pytest.mark.timeout(5)
@pytest.mark.parametrize(
    "field, value",
    [
        ("serial", ""),
        ("width_px", 0),
        ("fps", 0),
        ("exposure_us", 0),
        ("exposure_unit_us", 0),
        ("depth_width_px", 0),
        ("max_frame_age_s", 0),
        ("restart_backoff_s", -1),
        ("restart_backoff_max_s", 0.01),
        ("warmup_frames", -1),
        ("hardware_reset_after", -1),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    kw = {"serial": "111", "restart_backoff_s": 0.5, field: value}
    with pytest.raises(ValueError, match=field):
        RealSenseConfig(**kw)


@pytest.mark.timeout(5)
def test_list_serials():
    rs = make_fake_realsense([FakeDevice("111"), FakeDevice("222")])
    assert list_serials(rs) == ["111", "222"]


@pytest.mark.timeout(5)
def test_absent_serial_names_it_and_the_connected_ones(cameras):
    rs = make_fake_realsense([FakeDevice("111"), FakeDevice("222")])
    cam = cameras(cfg("999"), rs)
    with pytest.raises(CameraNotFoundError) as err:
        cam.start()
    msg = str(err.value)
    assert "999" in msg and "111" in msg and "222" in msg
    assert err.value.connected == ["111", "222"]
    assert not cam.running


@pytest.mark.timeout(5)
def test_none_connected_says_so(cameras):
    rs = make_fake_realsense([FakeDevice("111")], connected=[])
    with pytest.raises(CameraNotFoundError, match="no RealSense connected"):
        cameras(cfg("111"), rs).start()


@pytest.mark.timeout(5)
def test_missing_pyrealsense2_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)  # makes `import pyrealsense2` fail
    with pytest.raises(ImportError, match=r"pip install pyrealsense2.*real"):
        RealSenseCamera(cfg()).start()
    with pytest.raises(ImportError, match="pip install pyrealsense2"):
        list_serials()


# ---- frames ---------------------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_newest_frame_kept_with_increasing_timestamps(cameras):
    rs = make_fake_realsense([FakeDevice("111", tag=42)])
    dev = rs.fake.devices["111"]
    cam = cameras(cfg(), rs)
    assert cam.latest() is None and cam.age_s() == math.inf
    cam.start()
    frames = [cam.wait_for_frame(2.0)]
    for _ in range(8):
        frames.append(cam.wait_for_frame(2.0, newer_than=frames[-1].capture_time_s))
    for f in frames:
        assert f.image.dtype == np.uint8 and f.image.shape == (6, 8, 3)
        assert f.depth is None
        # The pixels are the frame's own (channel 0 = frame number, channel 2 = device tag).
        assert (f.image[..., 0] == f.frame_number % 256).all() and (f.image[..., 2] == 42).all()
        assert not f.image.flags.writeable
    for a, b in zip(frames, frames[1:], strict=False):
        assert b.frame_number > a.frame_number
        assert b.device_time_ms > a.device_time_ms
        assert b.capture_time_s > a.capture_time_s
    # Copied out of the (reused) librealsense buffer: the first frame still shows its own pixels.
    assert (frames[0].image[..., 0] == frames[0].frame_number % 256).all()
    assert cam.timestamp_domain.endswith("hardware_clock")

    # Only the newest frame is kept: once the stream stops, latest() is the last one delivered.
    rs.fake.unplug("111")  # the fake's wait_for_frames times out from now on
    time.sleep(0.08)
    assert cam.latest().frame_number == dev.last_frame
    assert 0.05 < cam.age_s() < 1.0


@pytest.mark.timeout(5)
def test_latest_never_blocks_before_the_first_frame(cameras):
    # 2 fps: the first frame exists 0.5 s after the pipeline starts.
    rs = make_fake_realsense([FakeDevice("111", fps_override=2)])
    cam = cameras(cfg(max_frame_age_s=2.0), rs)
    cam.start()
    t0 = time.monotonic()
    assert cam.latest() is None
    assert cam.age_s() == math.inf
    assert time.monotonic() - t0 < 0.05
    frame = cam.wait_for_frame(3.0)
    assert frame.frame_number == 1 and cam.latest() is frame


@pytest.mark.timeout(5)
def test_measured_fps(cameras):
    rs = make_fake_realsense([FakeDevice("111", fps_override=50)])
    cam = cameras(cfg(fps=50), rs)
    assert cam.fps == 0.0
    cam.start()
    time.sleep(0.6)
    assert 30 <= cam.fps <= 60


@pytest.mark.timeout(5)
def test_warmup_frames_are_dropped(cameras):
    rs = make_fake_realsense([FakeDevice("111")])
    cam = cameras(cfg(warmup_frames=5), rs)
    cam.start()
    assert cam.wait_for_frame(2.0).frame_number >= 6


@pytest.mark.timeout(5)
def test_depth_aligned_to_colour_with_scale(cameras):
    rs = make_fake_realsense([FakeDevice("111", depth_scale=0.00025)])
    cam = cameras(cfg(depth=True, depth_width_px=4, depth_height_px=3), rs)
    cam.start()
    assert cam.depth_scale_m == pytest.approx(0.00025)
    frame = cam.wait_for_frame(2.0)
    assert frame.depth is not None
    assert frame.depth.dtype == np.uint16 and frame.depth.shape == frame.image.shape[:2] == (6, 8)
    assert (frame.depth == 1000 + frame.frame_number).all()
    assert rs.fake.align_calls > 0


# ---- exposure ---------------------------------------------------------------------------------------


@pytest.mark.timeout(5)
def test_auto_exposure_is_switched_on(cameras):
    rs = make_fake_realsense([FakeDevice("111")])
    cameras(cfg(), rs).start()
    assert rs.fake.devices["111"].color_sensor.log == [(option.enable_auto_exposure, 1.0)]


@pytest.mark.timeout(5)
def test_manual_exposure_in_sensor_units(cameras):
    rs = make_fake_realsense([FakeDevice("111")])
    cameras(cfg(exposure_us=5000), rs).start()
    # D400 RGB sensor: 100 us per option unit; auto exposure goes off before the value is set.
    assert rs.fake.devices["111"].color_sensor.log == [
        (option.enable_auto_exposure, 0.0),
        (option.exposure, 50.0),
    ]


@pytest.mark.timeout(5)
def test_exposure_outside_the_sensor_range_fails_at_start(cameras):
    rs = make_fake_realsense([FakeDevice("111", exposure_range=(1, 10000))])
    cam = cameras(cfg(exposure_us=2_000_000), rs)
    with pytest.raises(ValueError, match=r"exposure_us .* 100\.\.1e\+06 us"):
        cam.start()
    assert rs.fake.active == 0  # the pipeline it had started was stopped again
    assert not cam.running


# ---- stalls and restarts ------------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_stall_restarts_the_pipeline_and_frames_resume(cameras, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    # The first pipeline start delivers 5 frames, then wait_for_frames times out; later ones stream.
    rs = make_fake_realsense([FakeDevice("111", stall_after=5, stall_starts=1)])
    dev = rs.fake.devices["111"]
    cam = cameras(cfg(exposure_us=3000), rs)
    cam.start()
    first = cam.wait_for_frame(2.0)
    wait_until(lambda: dev.stall_times)
    resumed = cam.wait_for_frame(3.0, newer_than=dev.stall_times[0])
    assert cam.restarts == 1 and dev.starts == 2
    assert resumed.capture_time_s > first.capture_time_s
    assert resumed.capture_time_s > dev.start_times[1]  # from the new pipeline
    stalled = [r for r in caplog.records if r.levelno == logging.WARNING and "stalled" in r.message]
    assert len(stalled) == 1
    assert "111" in stalled[0].message and "no new frame" in stalled[0].message
    assert "Frame didn't arrive" in stalled[0].message
    # The restart re-applies the exposure (options belong to the device, not the pipeline).
    assert dev.color_sensor.log.count((option.exposure, 30.0)) == 2
    assert rs.fake.active == 1  # the stalled pipeline was stopped


@pytest.mark.timeout(10)
def test_backoff_doubles_while_the_stream_keeps_stalling(cameras, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    # Every start delivers 2 frames, then wait_for_frames raises at once (no busy loop allowed).
    rs = make_fake_realsense([FakeDevice("111", stall_after=2, stall_mode="error")])
    dev = rs.fake.devices["111"]
    cam = cameras(cfg(max_frame_age_s=0.1, restart_backoff_s=0.02, restart_backoff_max_s=0.08, hardware_reset_after=0), rs)
    cam.start()
    wait_until(lambda: cam.restarts >= 5, timeout_s=5)
    delays = [
        float(m.group(1))
        for r in caplog.records
        if (m := re.search(r"restarting the pipeline in ([\d.]+) s", r.message))
    ]
    assert delays[:5] == [0.02, 0.04, 0.08, 0.08, 0.08]
    # And the waits really happen: each restart starts at least its backoff after the stall
    # was detected (detection is max_frame_age_s after the stall began).
    for i, delay in enumerate(delays[:4]):
        assert dev.start_times[i + 1] - dev.stall_times[i] >= 0.1 + delay - 0.01


@pytest.mark.timeout(10)
def test_unplugged_camera_is_retried_until_it_returns(cameras, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    rs = make_fake_realsense([FakeDevice("111"), FakeDevice("222")])
    dev = rs.fake.devices["111"]
    cam = cameras(cfg(restart_backoff_s=0.02, restart_backoff_max_s=0.05), rs)
    cam.start()
    cam.wait_for_frame(2.0)
    rs.fake.unplug("111")
    wait_until(lambda: any("restart" in r.message and "failed" in r.message for r in caplog.records))
    failed = next(r.message for r in caplog.records if "failed" in r.message)
    assert "111" in failed and "not found" in failed and "222" in failed
    assert cam.last_error.startswith("restart failed")
    # Back, but busy for one more start: that failure is retried too.
    dev.fail_starts = 1
    replug_t = time.monotonic()
    rs.fake.plug("111")
    frame = cam.wait_for_frame(3.0, newer_than=replug_t)
    assert frame.image.shape == (6, 8, 3)
    assert any("Device or resource busy" in r.message for r in caplog.records)
    assert rs.fake.active == 1
    # Failed restarts of an absent camera do not count towards a hardware reset: nothing to reset.
    assert dev.hardware_resets == 0 and cam.hardware_resets == 0


@pytest.mark.timeout(10)
def test_a_camera_that_restarts_cannot_cure_gets_a_hardware_reset(cameras, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    # Wedged: every pipeline starts but delivers nothing until the device is reset (the
    # "frame didn't arrive until the cable is replugged" failure).
    rs = make_fake_realsense([FakeDevice("111", wedged=True, reenumerate_s=0.2)])
    dev = rs.fake.devices["111"]
    cam = cameras(cfg(hardware_reset_after=2), rs)
    cam.start()
    frame = cam.wait_for_frame(5.0)
    # Two stalls (the first pipeline and one restart), then the reset, then frames again.
    assert len(dev.stall_times) == 2
    assert dev.hardware_resets == 1 and cam.hardware_resets == 1
    assert frame.capture_time_s > dev.start_times[-1]
    reset = [r.message for r in caplog.records if "hardware reset" in r.message]
    assert len(reset) == 1 and "111" in reset[0] and "2 stalls or failed starts in a row" in reset[0]
    # It was off the bus for a while: those restarts failed as "not found" and were retried.
    assert any("not found" in r.message for r in caplog.records)
    assert rs.fake.active == 1


@pytest.mark.timeout(10)
def test_hardware_reset_after_0_never_resets(cameras):
    rs = make_fake_realsense([FakeDevice("111", wedged=True)])
    dev = rs.fake.devices["111"]
    cam = cameras(cfg(hardware_reset_after=0, restart_backoff_max_s=0.05), rs)
    cam.start()
    wait_until(lambda: cam.restarts >= 4, timeout_s=5)
    assert dev.hardware_resets == 0 and cam.latest() is None


@pytest.mark.timeout(15)
def test_a_healthy_stream_between_stalls_resets_the_count(cameras):
    # Two stalls, but each after 1.5 s of frames (healthy after 1 s): not "in a row".
    rs = make_fake_realsense([FakeDevice("111", stall_after=150, stall_starts=2)])
    dev = rs.fake.devices["111"]
    cam = cameras(cfg(hardware_reset_after=2), rs)
    cam.start()
    wait_until(lambda: len(dev.start_times) >= 3, timeout_s=8)
    frame = cam.wait_for_frame(3.0, newer_than=dev.start_times[2])
    assert frame.capture_time_s > dev.start_times[2]
    assert dev.hardware_resets == 0 and len(dev.stall_times) == 2


@pytest.mark.timeout(10)
def test_frames_old_on_arrival_count_as_a_stall(cameras, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    # Host-clock timestamps 10 s in the past: every frame is stale when it arrives.
    rs = make_fake_realsense([FakeDevice("111", domain=timestamp_domain.system_time, timestamp_lag_ms=10_000)])
    cam = cameras(cfg(), rs)
    cam.start()
    wait_until(lambda: cam.restarts >= 1)
    assert cam.latest() is None
    assert any("stalled" in r.message for r in caplog.records)
    rs.fake.devices["111"].timestamp_lag_ms = 2.0  # fresh again: frames are published
    assert cam.wait_for_frame(3.0).image.shape == (6, 8, 3)
    assert cam.timestamp_domain.endswith("system_time")


@pytest.mark.timeout(5)
def test_stop_is_bounded_while_stalled(cameras):
    # Blocked in wait_for_frames, with a stall limit far away: stop() must not wait for it.
    rs = make_fake_realsense([FakeDevice("111", stall_after=1, stall_mode="block")])
    cam = cameras(cfg(max_frame_age_s=30.0), rs)
    cam.start()
    cam.wait_for_frame(2.0)
    time.sleep(0.1)
    t0 = time.monotonic()
    cam.stop()
    assert time.monotonic() - t0 < 0.5
    assert not cam.running and rs.fake.active == 0


@pytest.mark.timeout(5)
def test_stop_is_bounded_during_a_restart_backoff(cameras, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    rs = make_fake_realsense([FakeDevice("111", stall_after=1)])
    cam = cameras(cfg(restart_backoff_s=30.0, restart_backoff_max_s=60.0), rs)
    cam.start()
    wait_until(lambda: any("restarting the pipeline in 30 s" in r.message for r in caplog.records))
    t0 = time.monotonic()
    cam.stop()
    assert time.monotonic() - t0 < 0.5
    assert not cam.running and rs.fake.active == 0
    assert rs.fake.devices["111"].starts == 1  # no restart after stop


# ---- rig ---------------------------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_rig_returns_each_cameras_newest_image():
    rs = make_fake_realsense([FakeDevice("111", tag=1), FakeDevice("222", tag=2)])
    rig = RealSenseRig({"front": cfg("111"), "wrist": cfg("222", width_px=4, height_px=2)}, rs_module=rs)
    with rig:
        images = rig.images(max_age_s=1.0)
        assert set(images) == {"front", "wrist"}
        (front, t_front), (wrist, t_wrist) = images["front"], images["wrist"]
        assert front.shape == (6, 8, 3) and (front[..., 2] == 1).all()
        assert wrist.shape == (2, 4, 3) and (wrist[..., 2] == 2).all()
        assert abs(t_front - time.monotonic()) < 1.0 and abs(t_wrist - time.monotonic()) < 1.0
        diag = rig.diagnostics()
        assert diag["front"]["serial"] == "111" and diag["front"]["restarts"] == 0
        assert diag["front"]["hardware_resets"] == 0
        # A camera that stops delivering is named when its frame is too old.
        rs.fake.unplug("222")
        time.sleep(0.1)
        with pytest.raises(RuntimeError, match="'wrist'"):
            rig.images(max_age_s=0.05)
    assert rs.fake.active == 0


@pytest.mark.timeout(5)
def test_rig_names_missing_cameras_and_rejects_shared_serials():
    rs = make_fake_realsense([FakeDevice("111"), FakeDevice("222")], connected=["111"])
    rig = RealSenseRig({"front": cfg("111"), "wrist": cfg("222")}, rs_module=rs)
    with pytest.raises(CameraNotFoundError, match=r"'wrist' \(222\).*connected: 111"):
        rig.start()
    assert rs.fake.active == 0
    with pytest.raises(ValueError, match="same serial"):
        RealSenseRig({"a": cfg("111"), "b": cfg("111")}, rs_module=rs)


@pytest.mark.timeout(5)
def test_rig_start_failure_stops_the_cameras_already_started():
    rs = make_fake_realsense([FakeDevice("111"), FakeDevice("222", fail_starts=1)])
    rig = RealSenseRig({"front": cfg("111"), "wrist": cfg("222")}, rs_module=rs)
    with pytest.raises(RuntimeError, match="busy"):
        rig.start()
    assert rs.fake.active == 0
    assert not rig.cameras["front"].running
