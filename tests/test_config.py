"""Task YAML configs: validation errors name the dotted key (and suggest the nearest one), dotted
overrides apply, YAML cannot run code, and every shipped config loads and validates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from hilrl.actor.make import make_env
from hilrl.configs import config_path
from hilrl.robot_server.config import ServerConfig
from hilrl.robot_server.server import ConfigError, load_config
from hilrl.robot_server.sim.tasks import TASKS
from hilrl.transport.config import SECTIONS, document_hash, load_document, parse_document, section
from hilrl.transport.dashboard import DashboardConfig
from hilrl.transport.link_config import LinkConfig
from hilrl.transport.schema import SchemaError, to_dict
from hilrl.transport.sections.env import EnvConfig

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
SHIPPED_ALL = sorted(CONFIG_DIR.glob("*.yaml"))
# gym_<name>: a gymnasium env this project did not write (env.kind: gymnasium); every other
# shipped config is a robot task, simulated or real.
GYM_SHIPPED = [p for p in SHIPPED_ALL if p.stem.startswith("gym_")]
SHIPPED = [p for p in SHIPPED_ALL if p not in GYM_SHIPPED]
SECTION_TYPES = {"robot_server": ServerConfig, "env": EnvConfig, "dashboard": DashboardConfig}


def _write(tmp_path: Path, text: str, name: str = "task.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _shipped_with(tmp_path: Path, old: str, new: str, name: str = "sim_reach") -> Path:
    """A copy of a shipped config with one textual edit (which must apply exactly once)."""
    text = config_path(name).read_text()
    assert text.count(old) == 1, f"{old!r} should occur once in {name}.yaml"
    return _write(tmp_path, text.replace(old, new))


def _validate_all(doc: dict) -> None:
    for name, cls in SECTION_TYPES.items():
        section(doc, name, cls)


# ---------------------------------------------------------------------------------- bad keys


def test_misspelt_key_names_the_dotted_key_and_the_nearest_one(tmp_path):
    path = _shipped_with(tmp_path, "max_episode_steps:", "max_episod_steps:")
    doc = load_document(path)  # the top level is fine; the env section is what is wrong
    with pytest.raises(SchemaError) as info:
        section(doc, "env", EnvConfig)
    assert info.value.key == "env.max_episod_steps"
    assert "did you mean 'max_episode_steps'" in str(info.value)
    assert str(info.value).startswith("env.max_episod_steps:")
    # Building the env from that file fails the same way, before any robot is opened.
    with pytest.raises(SchemaError, match=r"env\.max_episod_steps.*max_episode_steps"):
        make_env(path)


def test_misspelt_nested_key_names_the_full_path(tmp_path):
    path = _shipped_with(
        tmp_path, "translational_stiffness_n_per_m:", "translational_stifness_n_per_m:"
    )
    with pytest.raises(SchemaError) as info:
        section(load_document(path), "robot_server", ServerConfig)
    assert info.value.key == "robot_server.impedance.translational_stifness_n_per_m"
    assert "did you mean 'translational_stiffness_n_per_m'" in str(info.value)
    # The robot server's own loader (hilrl robot-server --config) names it too.
    with pytest.raises(
        ConfigError, match=r"robot_server\.impedance\.translational_stifness_n_per_m"
    ):
        load_config(str(path))


def test_unknown_key_with_no_near_match_lists_the_valid_ones(tmp_path):
    path = _shipped_with(tmp_path, "  max_episode_steps: 50", "  max_episode_steps: 50\n  zzzz: 1")
    with pytest.raises(SchemaError) as info:
        section(load_document(path), "env", EnvConfig)
    assert info.value.key == "env.zzzz"
    assert "valid keys" in str(info.value) and "max_episode_steps" in str(info.value)


def test_unknown_top_level_section(tmp_path):
    path = _shipped_with(tmp_path, "\nenv:", "\nenvv:")
    with pytest.raises(SchemaError) as info:
        load_document(path)
    assert info.value.key == "envv"
    assert "unknown section" in str(info.value) and "did you mean 'env'" in str(info.value)

    path = _write(tmp_path, "task: reach\nrobot_arm_settings: {}\n", "other.yaml")
    with pytest.raises(SchemaError) as info:
        load_document(path)
    assert info.value.key == "robot_arm_settings"
    assert all(s in str(info.value) for s in SECTIONS)


# ---------------------------------------------------------------------------------- bad values


@pytest.mark.parametrize(
    "old, new, key, fragment",
    [
        ("max_episode_steps: 50", "max_episode_steps: fifty", "env.max_episode_steps", "integer"),
        ("max_episode_steps: 50", "max_episode_steps: 50.5", "env.max_episode_steps", "integer"),
        ("gripper: false", "gripper: maybe", "env.action.gripper", "true/false"),
        (
            "control_rate_hz: 10 ",
            "control_rate_hz: fast ",
            "robot_server.control_rate_hz",
            "number",
        ),
        ("clock: lockstep ", "clock: wallclock ", "robot_server.clock", "'lockstep'"),
        (
            "workspace_min_m: [0.30, -0.25, 0.05]",
            "workspace_min_m: [0.30, -0.25]",
            "robot_server.safety.workspace_min_m",
            "expected 3 values",
        ),
        (
            "state: [tcp_pose, tcp_twist, object]",
            "state: tcp_pose",
            "env.observation.state",
            "list",
        ),
        ("max_force_n: 100.0", "max_force_n: .nan", "robot_server.safety.max_force_n", "finite"),
    ],
)
def test_wrong_type_names_the_key(tmp_path, old, new, key, fragment):
    doc = load_document(_shipped_with(tmp_path, old, new))
    with pytest.raises(SchemaError) as info:
        _validate_all(doc)
    assert info.value.key == key
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("env.max_episode_steps=0", "max_episode_steps"),
        ("env.action.translation_scale_m=0.5", "translation_scale_m"),
        ("env.observation.state=[tcp_pose, tcp_speed]", "tcp_speed"),
        ("robot_server.sim.timestep_s=0.1", "timestep_s"),
        ("robot_server.safety.workspace_min_m=[0.8, -0.25, 0.05]", "workspace_min_m"),
        ("robot_server.impedance.translational_clip_m=0", "translational_clip_m"),
    ],
)
def test_out_of_range_values_are_refused_with_the_field_named(override, fragment):
    doc = load_document(config_path("sim_reach"), [override])
    with pytest.raises(SchemaError, match=fragment):
        _validate_all(doc)


def test_yaml_cannot_run_code(tmp_path):
    path = _write(tmp_path, "task: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SchemaError, match="not valid YAML"):
        load_document(path)


# ---------------------------------------------------------------------------------- overrides


def test_dotted_overrides_apply():
    path = config_path("sim_reach")
    doc = load_document(
        path,
        [
            "env.max_episode_steps=7",
            "robot_server.impedance.translational_clip_m=0.004",
            "env.observation.cameras=[front, wrist]",
            "robot_server.address=tcp://127.0.0.1:6001",
            "env.clear_errors_on_reset=false",
        ],
    )
    env = section(doc, "env", EnvConfig)
    server = section(doc, "robot_server", ServerConfig)
    assert env.max_episode_steps == 7
    assert env.observation.camera_names == ["front", "wrist"]
    assert env.clear_errors_on_reset is False
    assert server.impedance.translational_clip_m == 0.004
    assert server.address == "tcp://127.0.0.1:6001"
    # Untouched values keep the file's.
    assert server.impedance.translational_stiffness_n_per_m == 2000.0
    assert env.action.translation_scale_m == 0.03
    # The file itself is untouched, the hash follows the content.
    plain = load_document(path)
    assert plain["env"]["max_episode_steps"] == 50
    assert document_hash(doc) != document_hash(plain)
    assert document_hash(load_document(path)) == document_hash(plain)


def test_override_of_a_misspelt_key_is_caught():
    doc = load_document(config_path("sim_reach"), ["env.max_episod_steps=7"])
    with pytest.raises(SchemaError) as info:
        section(doc, "env", EnvConfig)
    assert info.value.key == "env.max_episod_steps"
    assert "did you mean 'max_episode_steps'" in str(info.value)


@pytest.mark.parametrize(
    "override, key",
    [
        ("env.max_episode_steps", "env.max_episode_steps"),  # no '='
        ("=5", "=5"),  # no key
        ("task.name=reach", "task.name"),  # 'task' is a value, not a section
        ("env.max_episode_steps=[1, 2", "env.max_episode_steps"),  # bad YAML value
    ],
)
def test_malformed_overrides_are_refused(override, key):
    with pytest.raises(SchemaError) as info:
        load_document(config_path("sim_reach"), [override])
    assert info.value.key == key


def test_parse_document_does_not_modify_its_input():
    doc = {"task": "reach", "env": {"max_episode_steps": 5}}
    out = parse_document(doc, ["env.max_episode_steps=9"])
    assert out["env"]["max_episode_steps"] == 9
    assert doc["env"]["max_episode_steps"] == 5


# ---------------------------------------------------------------------------------- shipped


def test_the_shipped_configs_are_the_sim_tasks_and_real_cells():
    # One sim_<task> per task, plus variants named sim_<task>_<variant> (e.g. _vision), plus real
    # cells named <robot>_<task> (e.g. franka_peg_insert).
    stems = {p.stem for p in SHIPPED}
    assert {f"sim_{t}" for t in TASKS} <= stems
    assert all(any(s == f"sim_{t}" or s.startswith(f"sim_{t}_") or s == f"franka_{t}" for t in TASKS)
               for s in stems), stems
    assert "franka_peg_insert" in stems
    assert GYM_SHIPPED, "at least one shipped gymnasium config (configs/gym_*.yaml)"


@pytest.mark.parametrize("path", GYM_SHIPPED, ids=[p.stem for p in GYM_SHIPPED])
def test_every_shipped_gymnasium_config_loads_and_every_value_is_used(path):
    doc = load_document(path)
    assert set(doc) <= set(SECTIONS) and "robot_server" not in doc  # no robot: no robot server section
    assert doc["task"] == path.stem
    raw = yaml.safe_load(path.read_text())
    for name, cls in {"env": EnvConfig, "link": LinkConfig, "dashboard": DashboardConfig}.items():
        _assert_matches(raw[name], to_dict(section(doc, name, cls)), name)
    env = section(doc, "env", EnvConfig)
    assert env.kind == "gymnasium" and env.gymnasium is not None and env.gymnasium.expert
    assert section(doc, "link", LinkConfig).address.startswith("tcp://127.0.0.1:")
    assert config_path(path.stem).samefile(path)


def _assert_matches(raw, parsed, where: str) -> None:
    """Every value written in the YAML is the value the dataclass holds (nothing ignored)."""
    if isinstance(raw, dict):
        assert isinstance(parsed, dict), where
        for key, value in raw.items():
            assert key in parsed, f"{where}.{key} was dropped"
            _assert_matches(value, parsed[key], f"{where}.{key}")
    elif isinstance(raw, list):
        assert list(parsed) == raw, where
    else:
        assert parsed == raw, where


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_config_loads_and_validates(path):
    doc = load_document(path)
    assert set(doc) <= set(SECTIONS)
    assert doc["task"] in TASKS
    real = not path.stem.startswith("sim_")
    assert path.stem in (f"sim_{doc['task']}", f"franka_{doc['task']}") or path.stem.startswith(f"sim_{doc['task']}_")
    raw = yaml.safe_load(path.read_text())
    for name, cls in SECTION_TYPES.items():
        assert name in doc, f"{path.name} has no {name}: section"
        parsed = section(doc, name, cls)
        assert isinstance(parsed, cls)
        _assert_matches(raw[name], to_dict(parsed), name)
    server = section(doc, "robot_server", ServerConfig)
    env = section(doc, "env", EnvConfig)
    # The robot server's own loader agrees with the actor's.
    assert load_config(str(path)) == server
    if real:
        # A real cell: the arm behind its server, keys on every non-loopback link, and the
        # server's limits tighter than the sim's defaults would be.
        assert server.backend == "franka" and server.clock == "realtime" and env.connection == "server"
        assert server.curve is not None and section(doc, "link", LinkConfig).curve is not None
        assert server.safety.max_force_n <= 50.0 and server.safety.watchdog_timeout_s <= 0.2
    else:
        # Shipped sim configs stay safe to run anywhere: loopback, sim backend, in-process env.
        assert server.backend == "sim" and server.address.startswith("tcp://127.0.0.1:")
        assert env.connection == "inprocess"
    # config_path finds it by name.
    assert config_path(path.stem).samefile(path)


def test_config_path_names_the_shipped_configs_when_one_is_missing():
    with pytest.raises(FileNotFoundError, match="sim_reach"):
        config_path("sim_rech")


# Every safety-relevant value has an absolute cap: a config outside it is refused naming the key
# and the range (hilrl.robot_server.safety).
SAFETY_OUT_OF_RANGE = [
    ("robot_server.safety.watchdog_timeout_s=5.0", "robot_server.safety.watchdog_timeout_s", "(0, 1] s"),
    ("robot_server.safety.watchdog_timeout_s=0", "robot_server.safety.watchdog_timeout_s", "(0, 1] s"),
    ("robot_server.safety.max_step_m=0.5", "robot_server.safety.max_step_m", "(0, 0.1] m"),
    ("robot_server.safety.max_step_rad=2.0", "robot_server.safety.max_step_rad", "(0, 0.5] rad"),
    ("robot_server.safety.orientation_limit_rad=[0.5, 0.5, 4.0]", "robot_server.safety.orientation_limit_rad[2]",
     "[0, 3.14159] rad"),
    ("robot_server.safety.max_force_n=1000", "robot_server.safety.max_force_n", "(0, 150] N"),
    ("robot_server.safety.max_tcp_speed_m_per_s=2.0", "robot_server.safety.max_tcp_speed_m_per_s", "(0, 1] m/s"),
    ("robot_server.safety.max_tcp_angular_speed_rad_per_s=10", "robot_server.safety.max_tcp_angular_speed_rad_per_s",
     "(0, 2.5] rad/s"),
    ("robot_server.safety.max_reset_position_noise_m=0.5", "robot_server.safety.max_reset_position_noise_m",
     "[0, 0.1] m"),
    ("robot_server.safety.max_reset_rotation_noise_rad=1.0", "robot_server.safety.max_reset_rotation_noise_rad",
     "[0, 0.5] rad"),
    ("robot_server.safety.workspace_max_m=[0.75, 0.35, 3.0]", "robot_server.safety.workspace_max_m[2]", "[-1.5, 1.5] m"),
    ("robot_server.safety.impedance.translational_clip_m=[0.001, 1.0]",
     "robot_server.safety.impedance.translational_clip_m", "<= 0.05"),
    ("robot_server.safety.impedance.translational_stiffness_n_per_m=[0, 10000000]",
     "robot_server.safety.impedance.translational_stiffness_n_per_m", "<= 5000"),
    ("robot_server.impedance.translational_clip_m=0.5", "robot_server.impedance.translational_clip_m",
     "[0.001, 0.02] (robot_server.safety.impedance.translational_clip_m)"),
    ("robot_server.impedance.translational_stiffness_n_per_m=100000", "robot_server.impedance.translational_stiffness_n_per_m",
     "[0, 3000]"),
    ("env.reset_position_noise_m=0.5", "env.reset_position_noise_m", "[0, 0.1] m"),
    ("env.reset_rotation_noise_rad=2.0", "env.reset_rotation_noise_rad", "[0, 0.5] rad"),
]


@pytest.mark.parametrize(("override", "key", "range_text"), SAFETY_OUT_OF_RANGE,
                         ids=[o for o, _, _ in SAFETY_OUT_OF_RANGE])
def test_safety_values_outside_their_caps_name_the_key_and_the_range(override, key, range_text):
    doc = load_document(config_path("sim_reach"), [override])
    with pytest.raises(SchemaError) as info:
        _validate_all(doc)
    assert info.value.key == key, str(info.value)
    assert range_text in str(info.value)


def test_every_shipped_sim_config_keeps_home_inside_its_box():
    """The sim tasks' home poses against each shipped sim config's box (the server refuses to start
    otherwise); a real cell's home comes from the robot, so `hilrl doctor` checks it there."""
    from hilrl.robot_server.safety import home_violation

    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("sim_*.yaml"))
    assert configs
    for path in configs:
        doc = load_document(path)
        server = section(doc, "robot_server", ServerConfig)
        assert home_violation(np.array(TASKS[doc["task"]].spec.home_position_m), server.safety) is None, path.name


@pytest.mark.parametrize("path", SHIPPED_ALL, ids=lambda p: p.stem)
def test_every_shipped_config_loads_with_the_previous_recipe_on_top(path):
    """The rlpd_v1 overrides (what an old run resumes with, and the bench's ablation base) build a
    valid learner section on every shipped config, including one that turns on a switch needing
    the state encoder those overrides remove (sim_pick_cube's grasp_trains_state_encoder)."""
    from hilrl.transport.sections.learner import LearnerConfig
    from hilrl.transport.sections.sac import rlpd_v1_overrides

    sac = section(load_document(path, list(rlpd_v1_overrides())), "learner", LearnerConfig).sac
    assert sac.state_encoder_dim is None and sac.grasp_trains_state_encoder is False
