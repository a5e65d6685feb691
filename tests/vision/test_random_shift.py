"""DrQ random shift: per-sample rigid shifts within +-pad with edge replication, any dtype/layout."""

from __future__ import annotations

import pytest
import torch

from hilrl.policies.encoders import is_channels_last, random_shift

PAD = 4


def coordinate_images(batch: int, h: int, w: int) -> torch.Tensor:
    """uint8 (B, H, W, 3): channel 0 = row, channel 1 = column, channel 2 = sample index."""
    rows = torch.arange(h).view(1, h, 1).expand(batch, h, w)
    cols = torch.arange(w).view(1, 1, w).expand(batch, h, w)
    sample = torch.arange(batch).view(batch, 1, 1).expand(batch, h, w)
    return torch.stack([rows, cols, sample], dim=-1).to(torch.uint8)


def recovered_shifts(out: torch.Tensor, pad: int) -> list[tuple[int, int]]:
    """Check that every sample of a shifted coordinate image (B, H, W, 3) is the input moved
    rigidly by (dy, dx), |dy|, |dx| <= pad, with edges replicated; return the shifts."""
    b, h, w, _ = out.shape
    shifts = []
    for i in range(b):
        # The centre pixel is never clamped (pad < H/2), so it reads the shift directly.
        dy = int(out[i, h // 2, w // 2, 0]) - h // 2
        dx = int(out[i, h // 2, w // 2, 1]) - w // 2
        assert abs(dy) <= pad and abs(dx) <= pad
        want_rows = (torch.arange(h) + dy).clamp(0, h - 1).view(h, 1).expand(h, w)
        want_cols = (torch.arange(w) + dx).clamp(0, w - 1).view(1, w).expand(h, w)
        assert torch.equal(out[i, :, :, 0].long(), want_rows)
        assert torch.equal(out[i, :, :, 1].long(), want_cols)
        assert (out[i, :, :, 2] == i).all()  # samples are never mixed
        shifts.append((dy, dx))
    return shifts


def test_every_output_pixel_comes_from_a_shifted_window_uint8_channels_last():
    x = coordinate_images(16, 24, 20)
    out = random_shift(x, PAD, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    shifts = recovered_shifts(out, PAD)
    assert len(set(shifts)) > 4  # samples get their own shifts
    assert any(s != (0, 0) for s in shifts)


def test_float32_channels_first_is_shifted_the_same_way():
    x = coordinate_images(16, 24, 20)
    x_chw = x.permute(0, 3, 1, 2).float()
    out = random_shift(x_chw, PAD, torch.Generator().manual_seed(0))
    assert out.shape == x_chw.shape and out.dtype == torch.float32
    recovered_shifts(out.permute(0, 2, 3, 1).to(torch.uint8), PAD)
    # Same generator state -> the same shifts whatever the layout and dtype.
    same = random_shift(x, PAD, torch.Generator().manual_seed(0))
    assert torch.equal(out.permute(0, 2, 3, 1).to(torch.uint8), same)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("layout", ["hwc", "chw"])
def test_shape_and_dtype_are_kept_and_images_change(dtype, layout):
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (8, 128, 128, 3), generator=gen).to(dtype)
    if layout == "chw":
        x = x.permute(0, 3, 1, 2).contiguous()
    out = random_shift(x, PAD, gen)
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert not torch.equal(out, x)
    # Values are only moved, never blended: every output value occurs in the input.
    assert torch.isin(out.unique(), x.unique()).all()


def test_pad_zero_is_the_identity_and_a_copy():
    x = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8)
    out = random_shift(x, 0)
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()
    with pytest.raises(ValueError, match="pad"):
        random_shift(x, -1)


def test_seeded_generators_reproduce_and_differ():
    x = torch.randint(0, 256, (32, 32, 32, 3), dtype=torch.uint8)
    a = random_shift(x, PAD, torch.Generator().manual_seed(7))
    b = random_shift(x, PAD, torch.Generator().manual_seed(7))
    c = random_shift(x, PAD, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_input_is_not_modified_and_gradients_flow_for_float_inputs():
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    before = x.detach().clone()
    random_shift(x, 2, torch.Generator().manual_seed(0)).sum().backward()
    assert torch.equal(x.detach(), before)
    assert x.grad is not None and x.grad.sum().item() == pytest.approx(2 * 3 * 16 * 16)


def test_layout_inference_and_the_ambiguous_case():
    assert is_channels_last(torch.zeros(1, 128, 128, 3))
    assert not is_channels_last(torch.zeros(1, 3, 128, 128))
    assert is_channels_last(torch.zeros(1, 5, 5, 5), channels_last=True)
    with pytest.raises(ValueError, match="channels_last"):
        random_shift(torch.zeros(1, 5, 5, 5), PAD)
    with pytest.raises(ValueError, match="4-d"):
        random_shift(torch.zeros(5, 5, 3), PAD)


def test_stays_on_the_tensors_device_without_host_syncs():
    # The meta device has no data: any host read-back (.item(), .tolist(), a Python loop over
    # values) would raise, and every intermediate must be created on the input's device.
    out = random_shift(torch.empty(8, 3, 64, 64, dtype=torch.uint8, device="meta"), PAD)
    assert out.device.type == "meta" and out.shape == (8, 3, 64, 64) and out.dtype == torch.uint8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_the_tensors_device_with_a_cpu_generator():
    x = coordinate_images(16, 24, 20).cuda()
    out = random_shift(x, PAD, torch.Generator().manual_seed(0))
    assert out.device == x.device
    recovered_shifts(out.cpu(), PAD)
    on_device = random_shift(x, PAD, torch.Generator(device="cuda").manual_seed(0))
    assert on_device.device == x.device
    recovered_shifts(on_device.cpu(), PAD)
