"""The agents' speed settings (hilrl.policies.speed) change how fast an update runs, never what it
computes: fused Adam takes the same steps as PyTorch's reference Adam, the allocator setting
removes the page faults of reallocating a freed buffer, and compiled critics learn like eager ones
and keep their parameter names."""

from __future__ import annotations

import resource
import shutil
import sys

import numpy as np
import pytest
import torch

from hilrl.policies.sac import SACAgent
from hilrl.policies.speed import adam, compile_forward, retain_freed_memory
from hilrl.transport.contract import learning_contract
from hilrl.transport.sections.sac import SACConfig


def test_fused_adam_takes_the_reference_adam_steps():
    torch.manual_seed(0)
    start = [torch.randn(256, 64), torch.randn(64), torch.randn(())]
    fused_params = [torch.nn.Parameter(p.clone()) for p in start]
    plain_params = [torch.nn.Parameter(p.clone()) for p in start]
    fused, plain = adam(fused_params, 1e-3), torch.optim.Adam(plain_params, lr=1e-3, fused=False, foreach=False)
    assert fused.defaults["fused"] is True
    for step in range(20):
        grads = [torch.randn_like(p) * (step + 1) for p in start]
        for params, opt in ((fused_params, fused), (plain_params, plain)):
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone()
            opt.step()
    for a, b in zip(fused_params, plain_params, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # The same state keys, so checkpoints written by either load in the other.
    assert set(fused.state[fused_params[0]]) == set(plain.state[plain_params[0]]) == {"step", "exp_avg", "exp_avg_sq"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a glibc allocator setting")
def test_a_freed_buffer_is_reused_without_page_faults():
    assert retain_freed_memory()
    size = 3 << 20  # 3 MiB, as a 10-critic hidden layer's activations (10 x 256 x 256 float32)

    def one_update() -> None:  # many buffers in use at once, all freed at the end
        live = [np.ones(size, np.uint8) for _ in range(16)]
        del live

    one_update()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        one_update()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    # With glibc's defaults the 48 MiB freed at the top of the heap is returned to the kernel
    # each time and faulted back in (measured: 122,580 faults here, all 768 pages of every
    # buffer); kept, it is reused.
    assert faults < 768, faults


def test_every_agent_has_fused_optimisers():
    agent = SACAgent(5, 3, True, SACConfig(hidden_dims=[16]), seed=0)
    for opt in (agent.actor_optimizer, agent.critic_optimizer, agent.temperature_optimizer, agent.grasp_optimizer):
        assert opt.defaults["fused"] is True


def _batch(gen: torch.Generator, state_dim: int, action_dim: int) -> dict[str, torch.Tensor]:
    return {"obs": torch.randn(64, state_dim, generator=gen), "next_obs": torch.randn(64, state_dim, generator=gen),
            "action": torch.rand(64, action_dim, generator=gen) * 2 - 1, "reward": torch.rand(64, generator=gen),
            "terminated": torch.zeros(64)}


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None, reason="inductor needs a C++ compiler")
def test_compiled_critics_learn_like_eager_ones_and_keep_their_names():
    config = dict(hidden_dims=[32, 32], ensemble_size=4, ensemble_subsample=2, critic_updates_per_actor_update=1)
    eager = SACAgent(6, 2, False, SACConfig(**config), seed=3)
    compiled = SACAgent(6, 2, False, SACConfig(**config, compile_critics=True), seed=3)
    for agent in (eager, compiled):
        agent.set_obs_normalization(np.zeros(6), np.ones(6))
    assert list(compiled.critic.state_dict()) == list(eager.critic.state_dict())
    gen_a, gen_b = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    for _ in range(15):
        a, b = eager.update(_batch(gen_a, 6, 2)), compiled.update(_batch(gen_b, 6, 2))
    # The same losses to float rounding (inductor's fused kernels reorder a few sums).
    for key in ("critic_loss", "actor_loss", "q_mean"):
        assert a[key] == pytest.approx(b[key], rel=1e-3, abs=1e-4), key
    for name, tensor in eager.critic.state_dict().items():
        torch.testing.assert_close(compiled.critic.state_dict()[name], tensor, rtol=1e-3, atol=1e-4)


def test_compile_without_a_cpp_compiler_is_an_error_naming_the_key(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match="learner.sac.compile_critics"):
        compile_forward(torch.nn.Linear(2, 2), torch.device("cpu"))


def test_compiling_is_per_process_not_part_of_the_learning_contract():
    on = learning_contract({"learner": {"sac": {"compile_critics": True}}})
    off = learning_contract({"learner": {"sac": {}}})
    assert on == off
    assert "learner.sac.compile_critics" not in on
    assert learning_contract({"learner": {"sac": {"discount": 0.9}}}) != off  # a learning key still counts
