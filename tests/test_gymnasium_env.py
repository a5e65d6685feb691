"""`env.kind: gymnasium`: an env this project did not write as the actor's env.

In one process: a gymnasium env with a nested Dict observation (float parts, an image) and a
0/1/2 gripper is mapped onto our contracts (state order, camera crop and resize, the gripper
convention both ways, success from an info key); unmappable spaces and wrong conventions are
config errors naming what is wrong. Through real processes: gymnasium's own Reacher-v5 trains
through `hilrl run` (demos from a `module:callable` scripted policy, learner, actor), then
`hilrl eval` and `hilrl browse` read the run.
"""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from hilrl.actor.gym_env import GymnasiumEnv
from hilrl.actor.interventions import make_intervention_device
from hilrl.actor.make import make_env
from hilrl.configs import config_path
from hilrl.learner.main import learner_spec
from hilrl.transport.config import load_document, parse_document, section
from hilrl.transport.contract import learning_contract
from hilrl.transport.schema import SchemaError
from hilrl.transport.sections.env import EnvConfig

GRIP_ID = "hilrl-test/GripperDict-v0"


class GripperDictEnv(gym.Env):
    """A foreign-looking env: nested Dict observation, an RGB image, and an action whose last dim
    is a gripper taking 0 = close, 1 = stay, 2 = open. It records the actions it receives, and
    reports info["score"] = the step count (success at a threshold)."""

    received: list[np.ndarray] = []

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Dict({
            "robot": gym.spaces.Dict({"joints": gym.spaces.Box(-1, 1, (3,), np.float64),
                                      "speed": gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)}),
            "goal": gym.spaces.Box(-1, 1, (2,), np.float32),
            "pixels": gym.spaces.Box(0, 255, (32, 48, 3), np.uint8),
        })
        self.action_space = gym.spaces.Box(np.array([-2, -2, 0], np.float32), np.array([2, 2, 2], np.float32))
        self._t = 0

    def _obs(self) -> dict[str, Any]:
        t = float(self._t)
        image = np.zeros((32, 48, 3), np.uint8)
        image[:, 24:] = 200  # right half bright: a crop of the left half is dark
        return {"robot": {"joints": np.array([t, t + 1, t + 2]) / 100, "speed": np.array([-t, t], np.float32)},
                "goal": np.array([0.5, -0.5], np.float32), "pixels": image}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self._t = 0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        GripperDictEnv.received.append(np.array(action))
        self._t += 1
        return self._obs(), 0.25, False, False, {"score": float(self._t)}


gym.register(GRIP_ID, entry_point=GripperDictEnv)

GRIP_ENV = {
    "kind": "gymnasium",
    "max_episode_steps": 10,
    "gymnasium": {"id": GRIP_ID, "gripper": {"index": -1, "open": 2, "stay": 1, "close": 0},
                  "state_parts": ["robot.joints", "goal"], "success_info_key": "score", "success_at_least": 3,
                  "success_ends_episode": True},
    "observation": {"cameras": [{"name": "pixels", "crop": [0, 0, 24, 32], "size": [32, 32]}]},
}


def grip_doc(**env_overrides: Any) -> dict[str, Any]:
    env = json.loads(json.dumps(GRIP_ENV))
    for key, value in env_overrides.items():
        env["gymnasium"][key] = value
    return parse_document({"task": "grip", "env": env, "learner": {"sac": {"encoder": {"image_size": 32}}}})


def test_a_nested_dict_env_maps_onto_state_cameras_and_our_gripper():
    env = make_env(grip_doc())
    assert isinstance(env, GymnasiumEnv)
    # The Dict space's own key order (gymnasium sorts a plain dict's keys): goal (2), then
    # robot.joints (3); robot.speed is left out by state_parts.
    assert env.observation_space["state"].shape == (5,)
    assert env.observation_space["pixels"].shape == (32, 32, 3)
    assert env.action_space.shape == (3,)  # two continuous dims, then our gripper
    GripperDictEnv.received.clear()
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs["state"], [0.5, -0.5, 0.0, 0.01, 0.02], atol=1e-7)
    assert obs["pixels"].shape == (32, 32, 3) and obs["pixels"].max() == 0  # the dark left half, resized

    # Ours: -1 open, 0 stay, +1 close -> the env's 2 / 1 / 0; continuous [-1, 1] -> [-2, 2].
    infos = []
    for ours in ([1.0, -1.0, -1.0], [0.5, 0.0, 0.0], [-1.0, 1.0, 1.0]):
        obs, reward, terminated, truncated, info = env.step(np.array(ours, np.float32))
        infos.append(info)
    np.testing.assert_allclose(np.array(GripperDictEnv.received), [[2, -2, 2], [1, 0, 1], [-2, 2, 0]])
    assert reward == 0.25  # the env's own reward
    assert [i["gripper_switched"] for i in infos] == [False, True, True]
    assert [i["succeeded"] for i in infos] == [False, False, True]  # info["score"] >= 3 at step 3
    assert terminated and not truncated  # success_ends_episode
    assert infos[-1]["env_info"] == {"score": 3.0}
    # An expert's (the env's) actions come back as ours, and a value outside the convention is refused.
    np.testing.assert_allclose(env.actions.from_env(np.array([2.0, -2.0, 0.0])), [1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="env.gymnasium.gripper"):
        env.actions.from_env(np.array([0.0, 0.0, 0.5]))
    env.close()


def test_without_success_ends_episode_the_envs_own_ending_stands():
    env = make_env(grip_doc(success_ends_episode=False))
    env.reset(seed=0)
    results = [env.step(np.zeros(3, np.float32)) for _ in range(10)]
    assert not any(r[2] for r in results)  # never terminated
    assert [r[3] for r in results] == [False] * 9 + [True]  # the time limit: env.max_episode_steps
    assert results[-1][4]["succeeded"]  # the final step's verdict is the episode's
    env.close()


@pytest.mark.parametrize(("override", "key", "words"), [
    ({"gripper": {"index": -1, "open": -1, "close": 1}}, "env.gymnasium.gripper.open", "outside the env's gripper bounds"),
    ({"gripper": {"index": 7, "open": 2, "close": 0}}, "env.gymnasium.gripper.index", "outside the env's 3 action dims"),
    ({"state_parts": ["robot.joint"]}, "env.gymnasium.state_parts", "goal, robot.joints, robot.speed"),
    ({"id": "hilrl-test/NoSuchEnv-v0"}, "env.gymnasium.id", "doesn't exist"),
    ({"import_modules": ["no_such_package_here"]}, "env.gymnasium.import_modules", "no_such_package_here"),
])
def test_a_wrong_declaration_is_a_config_error_naming_the_key(override, key, words):
    with pytest.raises(SchemaError) as caught:
        make_env(grip_doc(**override))
    assert caught.value.key == key and words in str(caught.value)
    with pytest.raises(SchemaError) as learner_side:  # the learner derives the same spec, and fails the same way
        learner_spec(grip_doc(**override))
    assert learner_side.value.key == key


def test_unmappable_spaces_are_named():
    doc = parse_document({"task": "t", "env": {"kind": "gymnasium", "gymnasium": {"id": "Blackjack-v1"}}})
    with pytest.raises(SchemaError, match=r"observation: Tuple spaces cannot be mapped"):
        make_env(doc)
    doc = parse_document({"task": "t", "env": {"kind": "gymnasium", "gymnasium": {"id": "CartPole-v1"}}})
    with pytest.raises(SchemaError, match=r"action space must be a 1-D Box.*Discrete\(2\)"):
        learner_spec(doc)
    with pytest.raises(SchemaError, match="has no image part 'front'; its image parts are pixels"):
        make_env(parse_document({"task": "t", "env": {**GRIP_ENV, "observation": {"cameras": ["front"]}}}))
    with pytest.raises(SchemaError, match="kind gymnasium needs env.gymnasium"):
        section(parse_document({"task": "t", "env": {"kind": "gymnasium"}}), "env", EnvConfig)


def test_a_missing_success_key_names_the_keys_the_env_has():
    env = make_env(grip_doc(success_info_key="is_success", success_at_least=None))
    env.reset(seed=0)
    with pytest.raises(SchemaError, match="info has no 'is_success'; its keys are score") as caught:
        env.step(np.zeros(3, np.float32))
    assert caught.value.key == "env.gymnasium.success_info_key"
    env.close()


def test_the_learner_derives_the_actors_spec_from_the_config_alone():
    doc = grip_doc()
    spec, action_dim, has_gripper = learner_spec(doc)
    env = make_env(doc)
    assert spec.state_dim == env.observation_space["state"].shape[0]
    assert spec.cameras == {"pixels": [32, 32, 3]}
    assert (action_dim, has_gripper) == (3, True)
    env.close()
    # The env's identity and mapping are in the learning contract: another env is refused at the handshake.
    contract = learning_contract(doc)
    assert contract["env.gymnasium.id"] == GRIP_ID and contract["env.gymnasium.gripper.open"] == 2


class CountingExpert:
    """A scripted policy as a class: instantiated once, reset per episode, get_action per step."""

    resets = 0

    def reset(self) -> None:
        CountingExpert.resets += 1

    def get_action(self, observation: dict) -> np.ndarray:
        return np.array([2.0, 0.0, 0.0])  # full speed on the first dim, gripper closed (env's 0)


def test_a_scripted_policy_named_module_callable_drives_demos_and_the_scripted_operator(tmp_path):
    from hilrl.tools.demos import record_demos

    doc = grip_doc(expert=f"{__name__}:CountingExpert")
    doc["actor"] = {"intervention": {"device": "scripted", "rule": "random", "probability": 1.0, "takeover_steps": 1,
                                     "max_per_episode": 100}}
    doc = parse_document(doc)
    summary = record_demos(doc, 2, tmp_path / "demos")
    assert summary["episodes"] == 2 and CountingExpert.resets >= 2
    from hilrl.transport.chunkfile import ChunkDirectory

    chunks = [m for _, m in ChunkDirectory(tmp_path / "demos").iter_messages() if hasattr(m, "action")]
    actions = np.concatenate([c.action[c.has_action] for c in chunks])
    assert len(actions) == summary["transitions"] > 0
    np.testing.assert_allclose(actions, np.tile([1.0, 0.0, 1.0], (len(actions), 1)))  # the env's action, as ours
    # The same expert as the scripted operator: it takes over (rule random, p = 1) with our action.
    env = make_env(doc)
    device = make_intervention_device(section(doc, "actor", _actor_config()).intervention, "grip", env)
    env.reset(seed=0)
    device.reset()
    np.testing.assert_allclose(device.intervene(env.robot_state, np.zeros(3)), [1.0, 0.0, 1.0])
    env.close()

    with pytest.raises(SchemaError, match="env.gymnasium.expert: no scripted policy is configured"):
        record_demos(parse_document({"task": "grip", "env": GRIP_ENV}), 1, tmp_path / "none")


def _actor_config() -> type:
    from hilrl.actor.config import ActorConfig

    return ActorConfig


def test_an_operator_device_needs_three_or_six_continuous_dims():
    doc = parse_document({"task": "t", "env": {"kind": "gymnasium", "gymnasium": {"id": "Reacher-v5"}},
                          "actor": {"intervention": {"device": "keyboard"}}})
    env = make_env(doc)
    with pytest.raises(ValueError, match="2 continuous action dims; an operator device"):
        make_intervention_device(section(doc, "actor", _actor_config()).intervention, "t", env)
    env.close()


@pytest.mark.serial
@pytest.mark.timeout(540)
def test_gymnasium_reacher_trains_through_hilrl_run_then_evaluates_and_browses(tmp_path, hilrl):
    """gymnasium's Reacher-v5 (not ours) through the same processes as the robot tasks. Stated
    success: the fingertip within 5 cm of the target at the last step in >= 40 % of 20
    deterministic episodes after 3,500 env steps. Holding still gives 1 % and random actions 8 %;
    a policy no better than random reaches 8 of 20 with probability 9e-5, so passing means it
    learned. The bar is not the typical figure: one run here gave 90 %, one on CI 65 %,
    since the learner and actor processes interleave differently on every machine and 20 episodes
    are a coarse measure."""
    run_dir = tmp_path / "run"
    done = hilrl("run", "--config", "gym_reacher", "--run-dir", str(run_dir), "--max-env-steps", "3500",
                 "--eval-episodes", "20", "learner.updates_per_env_step=2", "learner.batch_size=128", timeout_s=480)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["task"] == "gym_reacher" and summary["env_steps"] == 3500
    assert summary["demo_transitions"] > 0  # recorded by hilrl.actor.foreign_experts:reacher
    assert summary["eval_success_rate"] >= 0.4, summary
    assert not (run_dir / "robot_server.log").exists()  # no robot server for a gymnasium env
    assert summary["eval_mean_time_to_success_s"] is None  # steps, not seconds: no control period
    assert "the scripted policy hilrl.actor.foreign_experts:reacher" in done.stdout

    # In this process (the CLIs are tested elsewhere; a child process costs a torch import).
    from hilrl.tools import browse, evaluate

    result = evaluate.evaluate_run(run_dir, 3, write=False)
    assert result["episodes"] == 3 and result["task"] == "gym_reacher"
    assert result["mean_time_to_success_s"] is None  # a gymnasium env has no control period
    assert browse.summarize(run_dir)["task"] == "gym_reacher"


def test_hilrl_run_refuses_an_unmappable_env_before_starting_anything(tmp_path, hilrl):
    run_dir = str(tmp_path / "r")
    done = hilrl("run", "--config", "gym_reacher", "--run-dir", run_dir, "env.gymnasium.id=CartPole-v1",
                 "env.gymnasium.kwargs={}")
    assert done.returncode == 2
    assert "env.gymnasium: the action space must be a 1-D Box" in done.stderr and "Traceback" not in done.stderr
    # The shipped config's Reacher kwargs, which CartPole does not take, are named as such.
    done = hilrl("run", "--config", "gym_reacher", "--run-dir", run_dir, "env.gymnasium.id=CartPole-v1")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "env.gymnasium.kwargs: CartPole-v1 refused them" in done.stderr and "reward_control_weight" in done.stderr
    assert not (tmp_path / "r").exists()


def test_the_shipped_gymnasium_config_loads():
    doc = load_document(config_path("gym_reacher"))
    env = section(doc, "env", EnvConfig)
    assert env.kind == "gymnasium" and env.gymnasium is not None and env.gymnasium.expert


def test_doctor_checks_a_gymnasium_env_in_place_of_robot_and_cameras():
    from hilrl.tools.doctor import run_checks

    rows = run_checks(load_document(config_path("gym_reacher")), skip=("intervention", "learner"))
    assert [r.name for r in rows] == ["config", "env"] and all(r.ok for r in rows), rows
    assert "Reacher-v5: state 10, cameras none, action 2" in rows[1].detail
    broken = run_checks(load_document(config_path("gym_reacher"), ["env.gymnasium.success_info_key=is_success"]),
                        skip=("intervention", "learner"))
    assert not broken[1].ok and "info has no 'is_success'" in broken[1].detail
