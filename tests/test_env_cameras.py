"""Per-camera observation config: crop and resize to the configured size (uint8 end to end), crops
checked against the real frame, classifier-only cameras in info, frame capture times and ages, the
learner's spec agreeing with the env, and plain camera names still accepted.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported (conftest.py does it too)

import warnings  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from gymnasium.utils.env_checker import check_env  # noqa: E402

import hilrl.actor  # noqa: E402, F401  (registers the hilrl/Sim* ids)
from hilrl.actor.frames import crop_resize, resize  # noqa: E402
from hilrl.actor.make import make_env, make_sim_env  # noqa: E402
from hilrl.configs import config_path  # noqa: E402
from hilrl.learner.main import learner_spec  # noqa: E402
from hilrl.transport.config import load_document, section  # noqa: E402
from hilrl.transport.schema import SchemaError  # noqa: E402
from hilrl.transport.sections.env import CameraConfig, EnvConfig  # noqa: E402

SIM_FRAME = 128  # the shipped sim configs render 128x128


def _cameras(spec: str) -> list[str]:
    return [f"env.observation.cameras={spec}", "env.max_episode_steps=5"]


# ---------------------------------------------------------------------------------- frames


def test_whole_factor_downscale_is_a_rounded_box_average():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (128, 96, 3), dtype=np.uint8)
    out = resize(img, (64, 32))
    want = (img.reshape(64, 2, 32, 3, 3).astype(np.float64).mean(axis=(1, 3)) + 0.5).astype(np.uint8)
    assert out.dtype == np.uint8 and out.shape == (64, 32, 3)
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("size", [(64, 64), (50, 70), (96, 96), (200, 150), (128, 128), (1, 1)])
def test_resize_keeps_uint8_and_a_flat_image_flat(size):
    img = np.full((128, 128, 3), 200, np.uint8)
    img[..., 1] = 7
    out = resize(img, size)
    assert out.shape == (*size, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert (out[..., 0] == 200).all() and (out[..., 1] == 7).all()


def test_crop_takes_x_y_width_height():
    img = np.zeros((100, 120, 3), np.uint8)
    img[10:30, 40:80] = 255  # rows y 10..29, columns x 40..79
    out = crop_resize(img, (40, 10, 40, 20), (20, 40))
    assert out.shape == (20, 40, 3) and (out == 255).all()


# ---------------------------------------------------------------------------------- config


def test_camera_config_validates_sizes_and_crops():
    with pytest.raises(ValueError, match="size"):
        CameraConfig("front", size=(0, 64))
    with pytest.raises(ValueError, match="crop"):
        CameraConfig("front", crop=(-1, 0, 10, 10))
    with pytest.raises(ValueError, match="crop"):
        CameraConfig("front", crop=(0, 0, 0, 10))


def test_an_unknown_camera_key_is_an_error_naming_it():
    doc = load_document(config_path("sim_pick_cube"), _cameras("[{name: front, crp: [0, 0, 8, 8]}]"))
    with pytest.raises(SchemaError) as info:
        section(doc, "env", EnvConfig)
    assert info.value.key == "env.observation.cameras[0].crp"
    assert "did you mean 'crop'" in str(info.value)


def test_plain_camera_names_still_work():
    env = make_sim_env("pick_cube", overrides=_cameras("[front, wrist]"))
    try:
        assert [c.name for c in env.config.observation.cameras] == ["front", "wrist"]
        obs, _ = env.reset(seed=0)
        for cam in ("front", "wrist"):
            assert env.observation_space[cam].shape == (128, 128, 3)  # the default size
            assert obs[cam].shape == (128, 128, 3) and obs[cam].dtype == np.uint8
    finally:
        env.close()


# ---------------------------------------------------------------------------------- env


def test_crop_and_resize_give_the_configured_shapes():
    spec = "[{name: front, crop: [8, 16, 100, 90], size: [48, 40]}, {name: wrist, size: [64, 64]}]"
    env = make_sim_env("pick_cube", overrides=_cameras(spec))
    try:
        assert env.observation_space["front"] == gym.spaces.Box(0, 255, (48, 40, 3), np.uint8)
        assert env.observation_space["wrist"] == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)
        obs, *_ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        assert obs["front"].dtype == np.uint8 and obs["front"].shape == (48, 40, 3)
        assert obs["front"].std() > 0  # a real picture, not a blank
    finally:
        env.close()


@pytest.mark.parametrize(
    "crop", [[100, 0, 40, 40], [0, 0, SIM_FRAME + 1, 10], [0, 120, 10, 10]], ids=["x", "width", "y"]
)
def test_a_crop_outside_the_frame_is_an_error_naming_the_camera(crop):
    spec = f"[front, {{name: wrist, crop: {crop}, size: [32, 32]}}]"
    with pytest.raises(ValueError, match=r"'wrist'.*outside its 128x128"):
        make_sim_env("pick_cube", overrides=_cameras(spec))


def test_a_classifier_camera_is_in_info_not_in_the_observation():
    spec = "[{name: wrist, size: [32, 32]}, {name: front, size: [40, 48], role: classifier}]"
    env = make_sim_env("pick_cube", overrides=_cameras(spec))
    try:
        assert set(env.observation_space.spaces) == {"state", "wrist"}
        obs, info = env.reset(seed=0)
        for _ in range(2):
            assert "front" not in obs
            assert set(info["classifier_images"]) == {"front"}
            image = info["classifier_images"]["front"]
            assert image.shape == (40, 48, 3) and image.dtype == np.uint8
            assert set(info["image_capture_time_s"]) == {"wrist", "front"}
            obs, _, _, _, info = env.step(env.action_space.sample())
    finally:
        env.close()
    # The learner leaves it out too.
    doc = load_document(config_path("sim_pick_cube"), [*_cameras(spec), "learner.sac.encoder.image_size=32"])
    assert learner_spec(doc)[0].cameras == {"wrist": [32, 32, 3]}


def test_no_classifier_cameras_no_classifier_images():
    env = make_sim_env("pick_cube", overrides=_cameras("[wrist]"))
    try:
        _, info = env.reset(seed=0)
        assert "classifier_images" not in info
    finally:
        env.close()


def test_image_ages_and_capture_times_are_reported():
    env = make_sim_env("pick_cube", overrides=_cameras("[front, {name: wrist, size: [32, 32]}]"))
    try:
        _, info = env.reset(seed=0)
        for _ in range(3):
            ages = info["image_age_s"]
            assert set(ages) == {"newest", "oldest"}
            assert np.isfinite([ages["newest"], ages["oldest"]]).all() and ages["newest"] <= ages["oldest"]
            # Lockstep sim: frames render at the state's simulation time, on the same clock.
            assert abs(ages["oldest"]) < 1e-9
            assert set(info["image_capture_time_s"]) == {"front", "wrist"}
            for t in info["image_capture_time_s"].values():
                assert t == pytest.approx(info["robot_time_s"])
            _, _, _, _, info = env.step(env.action_space.sample())
        assert info["robot_time_s"] > 0
    finally:
        env.close()


@pytest.mark.timeout(120)
def test_check_env_passes_with_cropped_and_resized_cameras():
    spec = "[{name: front, crop: [16, 8, 96, 96], size: [64, 64]}, {name: wrist, size: [50, 70]}]"
    env = make_sim_env("pick_cube", overrides=_cameras(spec))
    try:
        with warnings.catch_warnings():
            # Unbounded float state is by design (forces, velocities); everything else must pass.
            warnings.filterwarnings("ignore", message=".*Box observation space (minimum|maximum) value is")
            check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


# ---------------------------------------------------------------------------------- vision config


def test_the_vision_config_gives_its_declared_spaces_and_the_learner_agrees():
    doc = load_document(config_path("sim_pick_cube_vision"))
    env_config = section(doc, "env", EnvConfig)
    assert "object" not in env_config.observation.state  # proprioception only
    spec, action_dim, gripper = learner_spec(doc)
    assert spec.cameras == {"front": [64, 64, 3], "wrist": [64, 64, 3]}
    assert doc["learner"]["sac"]["encoder"]["image_size"] == 64
    for env in (make_env(config_path("sim_pick_cube_vision")), gym.make("hilrl/SimPickCubeVision-v0")):
        try:
            space = env.observation_space
            assert {k: list(v.shape) for k, v in space.spaces.items() if k != "state"} == spec.cameras
            assert space["state"].shape == (spec.state_dim,) == (6 + 6 + 1,)
            assert env.action_space.shape == (action_dim,) and gripper
            obs, _ = env.reset(seed=0)
            assert space.contains(obs)
        finally:
            env.close()


def test_encoder_size_and_weights_file_are_checked_before_anything_starts(tmp_path):
    from hilrl.learner.main import Learner
    from hilrl.transport.config import load_document
    from hilrl.transport.schema import SchemaError

    config = "configs/sim_pick_cube_vision.yaml"
    with pytest.raises(SchemaError, match="learner.sac.encoder.image_size.*'front' gives 64x64"):
        Learner.validate(load_document(config, ["learner.sac.encoder.image_size=128"]))
    missing = tmp_path / "nope.npz"
    with pytest.raises(SchemaError, match="learner.sac.encoder.weights_path.*not found"):
        Learner.validate(load_document(config, [f"learner.sac.encoder.weights_path={missing}",
                                                f"learner.sac.encoder.weights_sha256={'a' * 64}"]))
    wrong = tmp_path / "weights.npz"
    wrong.write_bytes(b"not the file you hashed")
    with pytest.raises(SchemaError, match="learner.sac.encoder.weights_path.*(SHA-256|sha256|hash)"):
        Learner.validate(load_document(config, [f"learner.sac.encoder.weights_path={wrong}",
                                                f"learner.sac.encoder.weights_sha256={'a' * 64}"]))
    Learner.validate(load_document(config))  # the shipped config is consistent
