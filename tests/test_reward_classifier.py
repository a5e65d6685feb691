"""Reward classifier, end to end on the simulated arm: record labelled frames with the scripted
operator (labels = the sim's own success check), train the classifier (split by episode, threshold
from validation), then let it decide success in the env and compare with the sim's ground truth on
episodes it never saw. Also: balancing, the threshold rule, determinism, hash checks, the operator
label overriding the classifier, and the SpaceMouse / keyboard "success held" controls.

Small on purpose (2 CPU cores, a busy machine): pick_cube, one 32x32 classifier camera cropped
from a 64x64 render, the small encoder, one torch thread.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

_HERE = Path(__file__).resolve().parent
if str(_HERE / "hardware") not in sys.path:
    sys.path.insert(0, str(_HERE / "hardware"))

from fake_spacemouse import FakeClock, FakeSpaceMouse  # noqa: E402

from hilrl.actor.experts import make_expert  # noqa: E402
from hilrl.actor.interventions import InterventionWrapper  # noqa: E402
from hilrl.actor.make import make_env  # noqa: E402
from hilrl.actor.operators import (  # noqa: E402
    KeyboardOperator,  # noqa: E402
    SpaceMouseOperator,  # noqa: E402
)
from hilrl.configs import config_path  # noqa: E402
from hilrl.hardware.keyboard import KeyboardConfig, QueuedKeySource  # noqa: E402
from hilrl.hardware.spacemouse import ButtonBinding, SpaceMouseConfig  # noqa: E402
from hilrl.policies.classifier import (  # noqa: E402
    LabelledData,
    binary_metrics,
    load_classifier,
    select_threshold,
    train_classifier,
)
from hilrl.policies.classifier_config import ClassifierTrainConfig  # noqa: E402
from hilrl.tools import classifier_train  # noqa: E402
from hilrl.tools import labels as labels_module  # noqa: E402
from hilrl.tools.cli import SUBCOMMANDS  # noqa: E402
from hilrl.tools.labels import balance, read_label_set, record_labels  # noqa: E402
from hilrl.transport.action import ActionConfig  # noqa: E402
from hilrl.transport.config import load_document  # noqa: E402
from hilrl.transport.schema import SchemaError, from_dict  # noqa: E402
from hilrl.transport.sections.sac import EncoderConfig  # noqa: E402

TRAIN_EPISODES = 16
STEPS_AFTER_SUCCESS = 12
MAX_NEGATIVE_RATIO = 1.5
HELD_OUT_SEEDS = range(5000, 5010)  # never recorded: the training episodes use seeds 100..115
HELD_OUT_STEPS = 40  # the expert lifts the cube in 23-28 steps at the default speed cap


def _doc() -> dict:
    """pick_cube with two 32x32 classifier cameras and a small, fast classifier. The front camera
    (cropped to the cube's area) shows how high the cube is, but a cube far back on the table also
    sits high in its image; the wrist camera shows whether the cube is held between the fingers.
    Together they separate "lifted" from "not yet" on episodes never seen (front alone: ~0.92)."""
    doc = load_document(config_path("sim_pick_cube"))
    doc["robot_server"]["sim"].update(image_height=64, image_width=64)
    doc["env"]["observation"]["cameras"] = [
        {"name": "front", "crop": [8, 4, 48, 48], "size": [32, 32], "role": "classifier"},
        {"name": "wrist", "size": [32, 32], "role": "classifier"},
    ]
    doc["actor"]["intervention"]["device"] = "scripted"
    doc["reward_classifier"] = {
        "labels": {"max_negative_ratio": MAX_NEGATIVE_RATIO, "steps_after_success": STEPS_AFTER_SUCCESS, "seed": 0},
        "train": {
            "epochs": 30,
            "batch_size": 32,
            "learning_rate": 1e-3,
            "hidden_dims": [64],
            "validation_fraction": 0.25,
            "threshold": "f1",
            "device": "cpu",
            "torch_threads": 1,
            "seed": 0,
            "encoder": {
                "kind": "small",
                "image_size": 32,
                "feature_dim": 32,
                "num_spatial_embeddings": 4,
                # Small against 32 px: the classifier needs the cube's height in the image.
                "random_shift_pad_px": 2,
            },
        },
    }
    return doc


def _run_cli(main, argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(argv)
    return rc, out.getvalue()


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the env's classifier (the actor loop does the same)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("reward_classifier")
    (path / "task.yaml").write_text(yaml.safe_dump(_doc()))
    return path


@pytest.fixture(scope="module")
def recorded(workdir) -> Path:
    """`hilrl record-labels` on the sim with the scripted operator."""
    out = workdir / "labels"
    rc, stdout = _run_cli(
        labels_module.main, ["--config", str(workdir / "task.yaml"), "--out", str(out), "--episodes", str(TRAIN_EPISODES), "--seed", "100"]
    )
    assert rc == 0
    assert json.loads(stdout.splitlines()[-1])["counts"]["episodes"] == TRAIN_EPISODES
    return out


@pytest.fixture(scope="module")
def trained(workdir, recorded, one_thread) -> dict:
    """`hilrl train-classifier` on the recorded labels; its printed summary."""
    rc, stdout = _run_cli(
        classifier_train.main,
        ["--config", str(workdir / "task.yaml"), "--labels", str(recorded), "--out", str(workdir / "model")],
    )
    assert rc == 0
    summary = json.loads(stdout.splitlines()[-1])
    print("train-classifier:", json.dumps({k: summary[k] for k in ("threshold", "validation", "train")}))
    return summary


def _env_with(summary: dict, **ref) -> object:
    doc = _doc()
    doc["env"]["reward_classifier"] = {**summary["env"]["reward_classifier"], **ref}
    return make_env(doc)


# ---------------------------------------------------------------------------------- recording


@pytest.mark.timeout(60)
def test_record_labels_keeps_every_success_frame_and_balances_the_rest(recorded):
    assert {"record-labels", "train-classifier"} <= set(SUBCOMMANDS)
    labels = read_label_set(recorded)
    m = labels.manifest
    counts = m["counts"]
    assert m["camera_role"] == "classifier" and m["cameras"] == {"front": [32, 32], "wrist": [32, 32]}
    assert "sim task success" in m["label_source"]
    assert not (recorded / labels_module.STAGING).exists()
    # Every success frame kept; other frames subsampled to the configured ratio.
    assert counts["positives"] == counts["recorded_positives"] > 0
    assert counts["negatives"] == min(counts["recorded_negatives"], int(MAX_NEGATIVE_RATIO * counts["positives"]))
    assert counts["negatives"] < counts["recorded_negatives"]
    assert len(labels.labels) == counts["frames"] == counts["positives"] + counts["negatives"]
    for frames in labels.images.values():
        assert frames.shape == (counts["frames"], 32, 32, 3) and frames.dtype == np.uint8
    for entry in m["episodes"]:
        # The sim's success (cube 6 cm up) holds once reached: the first success frame and the
        # `steps_after_success` frames after it are the episode's success frames.
        assert entry["recorded_positives"] == STEPS_AFTER_SUCCESS + 1
        rows = labels.episodes == entry["episode"]
        steps, y = labels.steps[rows], labels.labels[rows]
        assert (np.diff(steps) > 0).all()
        assert y[np.argsort(steps)][-STEPS_AFTER_SUCCESS - 1 :].all()  # the last frames are the successes
    # Success labels are the sim's ground truth: frames labelled success show the cube lifted,
    # which on average puts more red higher in the image (a cheap sanity check of the pairing).
    red = (labels.images["front"][..., 0] > 150) & (labels.images["front"][..., 1] < 90)
    rows = np.arange(32)[None, :, None]
    mean_row = (red * rows).sum(axis=(1, 2)) / np.maximum(red.sum(axis=(1, 2)), 1)
    assert mean_row[labels.labels].mean() < mean_row[~labels.labels].mean()


@pytest.mark.timeout(60)
def test_record_labels_refuses_a_used_folder_and_needs_an_operator(workdir, recorded):
    with pytest.raises(ValueError, match="not empty"):
        record_labels(_doc(), recorded, episodes=1)
    doc = _doc()
    doc["actor"]["intervention"]["device"] = "none"
    with pytest.raises(SchemaError) as info:
        record_labels(doc, workdir / "no_operator", episodes=1)
    assert info.value.key == "actor.intervention.device"


@pytest.mark.timeout(60)
def test_an_operator_device_drives_and_labels_frames_with_success_held(tmp_path, capsys):
    """The device path: the operator's action runs (None holds the arm still), `success_held()`
    labels the frames, and the operator's end gesture ends the episode."""

    class Operator:
        def __init__(self):
            self.calls = 0

        def reset(self):
            self.calls = 0

        def intervene(self, state, policy_action):
            self.calls += 1
            return None if self.calls % 2 else np.array([0.0, 0.0, 0.5, 0.0], np.float32)

        def success_held(self):
            return self.calls >= 3

        def label(self):
            return "success" if self.calls >= 5 else None

        def close(self):
            pass

    doc = _doc()
    doc["reward_classifier"]["labels"] = {"max_negative_ratio": None, "steps_after_success": 0}
    manifest = record_labels(doc, tmp_path / "op", episodes=2, device=Operator())
    assert manifest["label_source"].startswith("operator")
    # Each episode waited at home for the operator's first input (its second poll), then reset.
    printed = capsys.readouterr().out
    assert "episode 1: the arm is home" in printed and "episode 2: the arm is home" in printed
    labels = read_label_set(tmp_path / "op")
    for e in manifest["episodes"]:
        y = labels.labels[labels.episodes == e["episode"]]
        # frames at steps 0..5: success_held is polled after the step that made `calls` reach it
        assert y.tolist() == [False, False, False, True, True, True]


@pytest.mark.timeout(30)
def test_balance_keeps_all_positives_and_draws_negatives_uniformly():
    rng = np.random.default_rng(0)
    episodes = [np.array([False] * 20 + [True] * 2), np.array([False] * 30), np.array([False] * 10 + [True] * 3)]
    masks = balance(episodes, 2.0, rng)
    kept = np.concatenate([y[m] for y, m in zip(episodes, masks, strict=True)])
    assert kept.sum() == 5 and (~kept).sum() == 10
    assert all(m[y].all() for y, m in zip(episodes, masks, strict=True))
    # Uniform over the session: over many draws every negative is kept about equally often.
    hits = np.zeros(60)
    for seed in range(400):
        masks = balance(episodes, 2.0, np.random.default_rng(seed))
        hits += np.concatenate([m[~y] for y, m in zip(episodes, masks, strict=True)])
    assert hits.min() > 0.5 * hits.mean() and hits.max() < 1.5 * hits.mean()
    assert all(m.all() for m in balance(episodes, None, rng))
    assert all(m.all() for m in balance([np.zeros(5, bool)], 1.0, rng))  # nothing to balance against


# ---------------------------------------------------------------------------------- training


@pytest.mark.timeout(30)
def test_select_threshold_by_f1_and_by_precision_target():
    p = np.array([0.9, 0.8, 0.6, 0.4, 0.3])
    y = np.array([True, True, False, True, False])
    # F1 of predicting the top k: 0.5, 0.8, 0.667, 0.857, 0.75 -> top 4, halfway to the 5th
    assert select_threshold(p, y, "f1") == pytest.approx((0.35, "f1"))
    assert select_threshold(p, y, "precision", 1.0) == pytest.approx((0.7, "precision"))
    assert select_threshold(p, y, "precision", 0.75) == pytest.approx((0.35, "precision"))
    threshold, rule = select_threshold(np.array([0.9, 0.8]), np.array([False, True]), "precision", 1.0)
    assert rule.startswith("f1 (precision target") and threshold == pytest.approx(0.4)
    with pytest.raises(ValueError, match="success and non-success"):
        select_threshold(p, np.ones(5, bool))


def _f1_optimal_threshold(p: np.ndarray, y: np.ndarray) -> float:
    """The F1-optimal threshold by brute force, written independently of select_threshold: every
    midpoint between two neighbouring distinct probabilities (and half the lowest), highest
    threshold among equal F1."""
    values = sorted(set(p.tolist()), reverse=True)
    cuts = [(a + b) / 2 for a, b in zip(values, values[1:], strict=False)] + [values[-1] / 2]
    best, best_f1 = None, -1.0
    for t in cuts:  # decreasing: a later cut must be strictly better
        pred = p >= t
        tp, fp, fn = np.sum(pred & y), np.sum(pred & ~y), np.sum(~pred & y)
        f1 = 2 * tp / (2 * tp + fp + fn)
        if f1 > best_f1:
            best, best_f1 = t, f1
    return float(best)


@pytest.mark.timeout(60)
def test_split_is_by_episode_and_the_threshold_comes_from_validation(recorded, trained):
    labels = read_label_set(recorded)
    val_eps, train_eps = trained["validation_episodes"], trained["train_episodes"]
    assert val_eps and train_eps and not set(val_eps) & set(train_eps)
    assert sorted(val_eps + train_eps) == sorted(np.unique(labels.episodes).tolist())
    val = np.isin(labels.episodes, val_eps)
    # Validation metrics count exactly the held-out episodes' frames, and none of those frames is
    # among the training frames (not even as an identical image).
    assert trained["validation"]["frames"] == int(val.sum())
    assert trained["train"]["frames"] == int((~val).sum())
    both = np.concatenate([labels.images["front"], labels.images["wrist"]], axis=1)
    digest = [hashlib.sha256(f.tobytes()).hexdigest() for f in both]
    assert not {d for d, v in zip(digest, val, strict=True) if v} & {d for d, v in zip(digest, val, strict=True) if not v}

    ref = trained["env"]["reward_classifier"]
    clf = load_classifier(ref["path"], ref["sha256"])
    p_val = clf.probabilities({cam: frames[val] for cam, frames in labels.images.items()})
    assert clf.threshold == trained["threshold"] == pytest.approx(_f1_optimal_threshold(p_val, labels.labels[val]), abs=1e-9)
    assert binary_metrics(p_val, labels.labels[val], clf.threshold) == pytest.approx(trained["validation"])
    # The training frames would pick another threshold: it really is the validation set's.
    p_train = clf.probabilities({cam: frames[~val] for cam, frames in labels.images.items()})
    assert _f1_optimal_threshold(p_train, labels.labels[~val]) != pytest.approx(clf.threshold, abs=1e-9)
    # The stored model: an .npz of plain arrays (no pickle) and a JSON naming its hash.
    meta = json.loads(Path(ref["path"]).read_text())
    weights = Path(ref["path"]).parent / meta["weights_file"]
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == meta["weights_sha256"]
    with np.load(weights, allow_pickle=False) as npz:
        assert all(npz[k].dtype.kind == "f" for k in npz.files)
    assert meta["cameras"] == {"front": [32, 32], "wrist": [32, 32]} and meta["encoder"]["image_size"] == 32
    assert meta["threshold_rule"] == "f1"
    assert trained["validation"]["accuracy"] >= 0.85


@pytest.mark.timeout(60)
def test_training_is_deterministic_under_a_seed(recorded, one_thread):
    labels = read_label_set(recorded)
    keep = np.isin(labels.episodes, np.unique(labels.episodes)[:6])
    data = LabelledData({cam: frames[keep] for cam, frames in labels.images.items()}, labels.labels[keep], labels.episodes[keep])
    config = from_dict(ClassifierTrainConfig, _doc()["reward_classifier"]["train"], "train")
    config.epochs = 2
    runs = []
    for seed in (3, 3, 4):
        config.seed = seed
        result = train_classifier(data, ["front", "wrist"], config)
        state = torch.cat([v.flatten().float() for v in result.model.state_dict().values()])
        runs.append((state, result.threshold, result.metrics["validation_episodes"]))
    assert torch.equal(runs[0][0], runs[1][0]) and runs[0][1:] == runs[1][1:]
    assert not torch.equal(runs[0][0], runs[2][0])


@pytest.mark.timeout(30)
def test_frames_of_the_wrong_size_name_the_encoder_key():
    data = LabelledData(
        {"front": np.zeros((4, 40, 40, 3), np.uint8)}, np.array([0, 1, 0, 1], bool), np.array([0, 0, 1, 1])
    )
    config = ClassifierTrainConfig(encoder=EncoderConfig(kind="small", image_size=32))
    with pytest.raises(ValueError, match=r"reward_classifier\.train\.encoder\.image_size"):
        train_classifier(data, ["front"], config)


# ---------------------------------------------------------------------------------- the env


@pytest.mark.timeout(90)
def test_classifier_decides_success_in_the_env_and_agrees_with_the_sim_on_held_out_episodes(trained, one_thread):
    env = _env_with(trained)
    try:
        expert = make_expert("pick_cube", env.config.action)
        threshold = env.reward_classifier.threshold
        agree, frames, first_steps = 0, 0, []
        for seed in HELD_OUT_SEEDS:
            obs, info = env.reset(seed=seed)
            expert.reset()
            assert "front" not in obs and 0.0 <= info["classifier_probability"] <= 1.0
            first = None
            # Past the env's termination on purpose: every frame is compared, before and after.
            for step in range(HELD_OUT_STEPS):
                obs, reward, terminated, truncated, info = env.step(expert.act(env.robot_state))
                p = info["classifier_probability"]
                assert info["succeeded"] == terminated == (p >= threshold)
                assert reward == (env.config.success_reward if p >= threshold else 0.0)
                agree += info["succeeded"] == info["task_succeeded"]
                frames += 1
                if terminated and first is None:
                    first = step
            first_steps.append(first)
        agreement = agree / frames
        print(f"held-out agreement with the sim: {agreement:.3f} over {frames} frames; first success steps {first_steps}")
        assert agreement >= 0.9
        assert all(f is not None for f in first_steps)
    finally:
        env.close()


@pytest.mark.timeout(60)
def test_the_operator_label_overrides_the_classifier(trained, one_thread):
    class Labeller:
        """Never drives; labels the episode at the step given."""

        def __init__(self, label, on_step):
            self.label_, self.on_step, self.steps = label, on_step, 0

        def reset(self):
            self.steps = 0

        def intervene(self, state, policy_action):
            self.steps += 1
            return None

        def label(self):
            return self.label_ if self.steps == self.on_step else None

        def close(self):
            pass

    env = _env_with(trained)
    expert = make_expert("pick_cube", env.config.action)
    # Where the classifier says success: the operator says failure, and failure it is.
    wrapped = InterventionWrapper(env, Labeller("failure", on_step=10_000))
    wrapped.reset(seed=HELD_OUT_SEEDS[0])
    expert.reset()
    for _ in range(HELD_OUT_STEPS):
        _, _, terminated, _, info = wrapped.step(expert.act(env.robot_state))
        if terminated:
            break
    assert info["classifier_probability"] >= env.reward_classifier.threshold
    wrapped.device.on_step = wrapped.device.steps + 1  # the next step
    _, reward, terminated, truncated, info = wrapped.step(expert.act(env.robot_state))
    assert info["classifier_probability"] >= env.reward_classifier.threshold  # the classifier still says yes
    assert info["human_label"] == "failure" and reward == 0.0 and terminated and not truncated and not info["succeeded"]
    # Where the classifier says no success: the operator's success pays and ends the episode.
    wrapped = InterventionWrapper(env, Labeller("success", on_step=1))
    wrapped.reset(seed=HELD_OUT_SEEDS[1])
    _, reward, terminated, _, info = wrapped.step(np.zeros(4, np.float32))
    assert info["classifier_probability"] < env.reward_classifier.threshold
    assert reward == env.config.success_reward and terminated and info["succeeded"] and info["human_label"] == "success"
    wrapped.close()


@pytest.mark.timeout(60)
def test_a_wrong_hash_or_a_changed_file_is_refused_with_the_key_named(trained, tmp_path):
    with pytest.raises(SchemaError) as info:
        _env_with(trained, sha256="0" * 64)
    assert info.value.key == "env.reward_classifier.sha256"
    assert "SHA-256 mismatch" in str(info.value) and "0" * 64 in str(info.value)
    with pytest.raises(SchemaError) as info:
        _env_with(trained, sha256="abc")
    assert info.value.key.startswith("env.reward_classifier")
    with pytest.raises(SchemaError) as info:
        _env_with(trained, path=str(tmp_path / "missing.json"))
    assert info.value.key == "env.reward_classifier.path" and "not found" in str(info.value)
    # A copy whose weights were altered: the JSON still matches, its weights hash does not.
    src = Path(trained["env"]["reward_classifier"]["path"])
    for f in src.parent.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    weights = tmp_path / json.loads(src.read_text())["weights_file"]
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(SchemaError) as info:
        _env_with(trained, path=str(tmp_path / src.name))
    assert info.value.key == "env.reward_classifier.path" and weights.name in str(info.value)
    # Camera sizes must match what the classifier was trained on.
    doc = _doc()
    doc["env"]["observation"]["cameras"][0]["size"] = [40, 40]
    doc["env"]["reward_classifier"] = copy.deepcopy(trained["env"]["reward_classifier"])
    with pytest.raises(SchemaError, match="32x32 frames from camera 'front'"):
        make_env(doc)


# ---------------------------------------------------------------------------------- devices


@pytest.mark.timeout(30)
def test_keyboard_success_toggle_and_spacemouse_success_hold_button(monkeypatch):
    action = ActionConfig(translation_scale_m=0.02, gripper=True)
    keys = QueuedKeySource()
    keyboard = KeyboardOperator(KeyboardConfig(), action, source=keys)
    assert not keyboard.success_held()
    keys.feed("h")
    assert keyboard.success_held() and keyboard.success_held()
    keys.feed("H")
    assert not keyboard.success_held()
    keys.feed("h")
    keyboard.reset()
    assert not keyboard.success_held()  # every episode starts without success

    clock = FakeClock()
    mouse = FakeSpaceMouse(clock)
    monkeypatch.setitem(sys.modules, "pyspacemouse", mouse.module)
    config = SpaceMouseConfig(
        toggle_gripper=ButtonBinding([0]), close_gripper=None, open_gripper=None, success=None, failure=None,
        success_hold_button=1,
    )
    op = SpaceMouseOperator(config, action, clock=clock, start_thread=False)
    try:
        op.reader.poll()
        assert not op.success_held()
        mouse.press(1)
        op.reader.poll()
        assert op.success_held()
        clock.advance(2.0)  # held long: no gesture uses button 1, nothing fires
        op.reader.poll()
        assert op.success_held() and op.label() is None
        mouse.release(1)
        op.reader.poll()
        assert not op.success_held() and op.label() is None
    finally:
        op.close()
    default = SpaceMouseOperator(SpaceMouseConfig(), action, clock=clock, start_thread=False)
    try:
        assert not default.success_held()  # no hold button configured
    finally:
        default.close()
    with pytest.raises(ValueError, match="success_hold_button 1 is also in the open_gripper gesture"):
        SpaceMouseConfig(success_hold_button=1)
