"""A short image-based run through real processes: `hilrl run` on the two-camera pick-cube config
(robot server, learner and actor as separate processes over ZeroMQ on loopback)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hilrl.transport.chunkfile import ChunkDirectory
from hilrl.transport.learner_messages import LEARNER_MESSAGES, TransitionChunk


@pytest.mark.serial
@pytest.mark.timeout(300)
@pytest.mark.parametrize("frozen", [False, True], ids=["trained_encoder", "frozen_backbone"])
def test_short_image_run_trains_sends_weights_and_the_actor_acts_on_them(tmp_path, frozen, hilrl):
    run_dir = tmp_path / "run"
    done = hilrl(
        "run", "--config", "configs/sim_pick_cube_vision.yaml", "--run-dir", str(run_dir),
        "--max-env-steps", "200", "--eval-episodes", "2",
        "learner.training_starts=60", "learner.weights_every_updates=10", "learner.batch_size=32",
        f"learner.sac.encoder.frozen={str(frozen).lower()}", "learner.sac.encoder.feature_dim=32",
        "learner.sac.hidden_dims=[64,64]", "learner.updates_per_env_step=1",
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env_steps"] == 200 and summary["updates"] > 20, summary
    assert summary["weights_version"] >= 2, summary

    # Every record the learner stored carries both cameras' frames, as uint8 at the configured size.
    chunks = [m for _, m in ChunkDirectory(run_dir / "learner" / "link" / "chunks").iter_messages(LEARNER_MESSAGES)
              if isinstance(m, TransitionChunk)]
    assert sum(int(c.has_action.sum()) for c in chunks) == 200
    for c in chunks:
        assert set(c.obs_images) == {"front", "wrist"}
        assert all(v.dtype == np.uint8 and v.shape[1:] == (64, 64, 3) for v in c.obs_images.values())
    # The actor acted on trained weights: policy actions carry versions published after updates.
    versions = np.concatenate([c.policy_version[c.has_action & ~c.intervened] for c in chunks])
    assert versions.max() >= 1, "the actor never used weights published after training started"
    evaluation = json.loads((run_dir / "actor" / "eval.json").read_text())
    assert evaluation["policy_version"] >= 1 and evaluation["eval_episodes"] == 2

    learner_log = (run_dir / "learner.log").read_text()
    if frozen:
        assert "frozen encoder" in learner_log and "sent once per actor" in learner_log
    else:
        assert "frozen encoder" not in learner_log
