"""Mapping gymnasium spaces onto the project's contracts (hilrl.transport.gym_spaces): nested
Dict observations, images as cameras, clear errors for what cannot be mapped, and action
rescaling with a declared gripper convention that round-trips and is refused when wrong."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st

from hilrl.transport.gym_spaces import (
    GripperMapping,
    SpaceMappingError,
    map_action_space,
    map_observation_space,
)


def test_nested_dict_observation_flattens_floats_in_space_order_and_takes_images_as_cameras():
    space = spaces.Dict({
        "robot": spaces.Dict({"qpos": spaces.Box(-1, 1, (7,)), "qvel": spaces.Box(-5, 5, (7,))}),
        "object": spaces.Box(-np.inf, np.inf, (2, 3)),
        "images": spaces.Dict({"front": spaces.Box(0, 255, (64, 48, 3), np.uint8)}),
    })
    layout = map_observation_space(space)
    order = list(space.spaces)  # the Dict's own key order
    assert layout.state_dim == 7 + 7 + 6
    assert layout.cameras == {"images.front": (64, 48, 3)}
    assert layout.spec.state_dim == 20 and layout.spec.cameras == {"images.front": [64, 48, 3]}
    sample = space.sample()
    out = layout.convert(sample)
    expected = []
    for key in order:
        if key == "robot":
            expected += [sample["robot"][k].reshape(-1) for k in space["robot"].spaces]
        elif key == "object":
            expected.append(sample["object"].reshape(-1))
    np.testing.assert_array_equal(out["state"], np.concatenate(expected).astype(np.float32))
    assert out["images.front"].dtype == np.uint8 and out["images.front"].shape == (64, 48, 3)


@pytest.mark.parametrize("space, named", [
    (spaces.Dict({"pos": spaces.Box(-1, 1, (3,)), "mode": spaces.Discrete(4)}), "observation mode: Discrete"),
    (spaces.Dict({"pos": spaces.Box(-1, 1, (3,)), "mask": spaces.Box(0, 1, (5,), np.uint8)}), "observation mask"),
    (spaces.Box(0, 10, (3,), np.int64), "int64 Box"),
    (spaces.Dict({"pixels": spaces.Box(0, 255, (8, 8, 3), np.uint8)}), "no float part"),
    (spaces.Tuple((spaces.Box(-1, 1, (2,)),)), "Tuple"),
])
def test_unmappable_observation_parts_are_named(space, named):
    with pytest.raises(SpaceMappingError, match=named):
        map_observation_space(space)


def test_a_bare_box_is_the_state():
    layout = map_observation_space(spaces.Box(-1, 1, (4,)))
    assert layout.state_dim == 4 and layout.cameras == {} and layout.state_parts == ["observation[4]"]
    np.testing.assert_array_equal(layout.convert(np.arange(4.0))["state"], np.arange(4, dtype=np.float32))


def test_continuous_actions_rescale_onto_the_env_bounds():
    actions = map_action_space(spaces.Box(np.array([-2.0, 0.0]), np.array([2.0, 10.0])))
    assert actions.action_dim == 2
    np.testing.assert_allclose(actions.to_env([-1, 1]), [-2.0, 10.0])
    np.testing.assert_allclose(actions.to_env([0, 0]), [0.0, 5.0])
    np.testing.assert_allclose(actions.to_env([5, -5]), [2.0, 0.0])  # clipped to [-1, 1] first
    with pytest.raises(SpaceMappingError, match="finite"):
        map_action_space(spaces.Box(-np.inf, np.inf, (3,)))
    with pytest.raises(SpaceMappingError, match="1-D Box"):
        map_action_space(spaces.Discrete(3))


# Another project's discrete gripper: 0 = close, 1 = stay, 2 = open, on its first action dim.
DISCRETE = GripperMapping(index=0, open=2.0, stay=1.0, close=0.0)


@settings(max_examples=200, deadline=None)
@given(action=st.lists(st.floats(-1, 1), min_size=4, max_size=4))
def test_a_declared_gripper_convention_round_trips(action):
    space = spaces.Box(np.array([0.0, -1.0, -1.0, -1.0]), np.array([2.0, 1.0, 1.0, 1.0]))
    layout = map_action_space(space, DISCRETE)
    assert layout.action_dim == 4 and layout.gripper_index == 0
    env = layout.to_env(np.array(action))
    command = action[3]  # ours: gripper last
    assert env[0] == (0.0 if command >= 0.5 else 2.0 if command <= -0.5 else 1.0)
    back = layout.from_env(env)
    np.testing.assert_allclose(back[:3], action[:3], atol=1e-5)
    assert back[3] == (1.0 if command >= 0.5 else -1.0 if command <= -0.5 else 0.0)


def test_a_binary_gripper_without_stay_repeats_its_last_command():
    layout = map_action_space(spaces.Box(np.array([-1.0, 0.0]), np.array([1.0, 1.0])),
                              GripperMapping(index=-1, open=0.0, close=1.0))
    assert layout.to_env([0.0, 0.0])[1] == 0.0  # nothing commanded yet: open
    assert layout.to_env([0.0, 0.9])[1] == 1.0
    assert layout.to_env([0.0, 0.1])[1] == 1.0  # stay: still closed
    layout.reset()
    assert layout.to_env([0.0, 0.1])[1] == 0.0


def test_a_wrong_gripper_convention_is_refused():
    space = spaces.Box(np.array([-1.0, 0.0]), np.array([1.0, 2.0]))
    # Our own convention (-1 open, +1 close) declared for an env whose gripper takes 0..2.
    with pytest.raises(SpaceMappingError, match=r"gripper.open: -1 is outside the env's gripper bounds \[0, 2\]"):
        map_action_space(space, GripperMapping(index=-1))
    with pytest.raises(SpaceMappingError, match="outside the env's 2 action dims"):
        map_action_space(space, GripperMapping(index=5, open=0, close=2))
    with pytest.raises(ValueError, match="must differ"):
        GripperMapping(open=1.0, close=1.0)
    # A recorded value the declared convention does not know is refused, not read as "stay".
    layout = map_action_space(space, GripperMapping(index=-1, open=0.0, close=2.0))
    with pytest.raises(SpaceMappingError, match="none of the declared ones"):
        layout.from_env(np.array([0.0, 1.0]))
