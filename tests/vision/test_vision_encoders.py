"""Image encoders: shapes, input formats, frozen backbones, the encoder config. CPU, seeded, fast."""

from __future__ import annotations

import pytest
import torch

from hilrl.policies.encoders import (
    MultiCameraEncoder,
    ResNet10,
    ResNet18,
    SmallConvEncoder,
    SpatialLearnedEmbeddings,
    same_padding,
    to_float_chw,
)
from hilrl.transport.schema import SchemaError, from_dict
from hilrl.transport.sections.sac import EncoderConfig, SACConfig


def images(cameras: list[str], batch: int, size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """uint8 (B, H, W, 3) noise images per camera."""
    gen = torch.Generator().manual_seed(seed)
    return {c: torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, generator=gen) for c in cameras}


def encoder(kind: str, cameras: list[str], size: int = 128, seed: int = 0, **kw) -> MultiCameraEncoder:
    torch.manual_seed(seed)
    return MultiCameraEncoder(cameras, EncoderConfig(kind=kind, image_size=size, **kw))


@pytest.mark.parametrize("kind", ["small", "resnet10", "resnet18"])
@pytest.mark.parametrize("cameras", [["wrist"], ["wrist", "side"]])
@pytest.mark.parametrize("size", [128, 64])
def test_output_shape(kind, cameras, size):
    enc = encoder(kind, cameras, size, feature_dim=32)
    with torch.no_grad():
        out = enc(images(cameras, 2, size))
    assert out.shape == (2, 32 * len(cameras))
    assert out.dtype == torch.float32
    assert enc.out_dim == 32 * len(cameras)
    # tanh bottleneck: bounded features.
    assert out.abs().max() < 1.0


@pytest.mark.parametrize("kind", ["small", "resnet10", "resnet18"])
def test_uint8_and_float_inputs_agree_in_both_layouts(kind):
    enc = encoder(kind, ["cam"], 64)
    x = images(["cam"], 3, 64)["cam"]  # (B, H, W, 3) uint8
    chw_float = x.permute(0, 3, 1, 2).float() / 255.0
    with torch.no_grad():
        ref = enc({"cam": x})
        for other in (chw_float, x.permute(0, 3, 1, 2), x.float() / 255.0):
            torch.testing.assert_close(enc({"cam": other}), ref, rtol=0, atol=1e-6)


def test_other_observation_keys_are_ignored_and_a_missing_camera_is_named():
    enc = encoder("small", ["wrist", "side"], 64)
    obs = images(["wrist", "side"], 1, 64) | {"state": torch.zeros(1, 7)}
    assert enc(obs).shape == (1, 512)
    with pytest.raises(KeyError, match="side"):
        enc({"wrist": obs["wrist"]})


def test_wrong_image_size_is_refused_with_both_sizes():
    enc = encoder("small", ["cam"], 64)
    with pytest.raises(ValueError, match="128x128.*64x64"):
        enc(images(["cam"], 1, 128))


def test_to_float_chw_refuses_other_dtypes_and_channel_counts():
    with pytest.raises(TypeError):
        to_float_chw(torch.zeros(1, 8, 8, 3, dtype=torch.int32))
    with pytest.raises(ValueError, match="3 colour channels"):
        to_float_chw(torch.zeros(1, 8, 8, 4, dtype=torch.uint8))


def test_resnet10_parameter_count_matches_the_reference():
    n = sum(p.numel() for p in ResNet10().parameters())
    assert 4_500_000 <= n <= 5_300_000


@pytest.mark.parametrize("cls", [ResNet10, ResNet18])
def test_resnet_feature_map_is_4x4_at_128_pixels(cls):
    backbone = cls()
    with torch.no_grad():
        out = backbone(torch.rand(1, 3, 128, 128))
        assert out.shape == (1, 512, 4, 4)
        assert backbone.output_shape(128) == (512, 4, 4)
        for size in (100, 75, 33):
            assert backbone.output_shape(size) == tuple(backbone(torch.rand(1, 3, size, size)).shape[1:])


def test_resnet18_is_torchvisions_without_the_classifier():
    backbone = ResNet18()
    # torchvision's resnet18 has 11,689,512 parameters; fc (512 x 1000 + 1000) is left out.
    assert sum(p.numel() for p in backbone.parameters()) == 11_689_512 - 513_000
    keys = set(backbone.state_dict())
    assert {"conv1.weight", "bn1.running_mean", "layer1.1.bn2.weight", "layer4.0.downsample.0.weight",
            "layer4.0.downsample.1.running_var"} <= keys
    assert not any(k.startswith("fc.") or k.endswith("num_batches_tracked") for k in keys)
    assert all(t.dtype == torch.float32 for t in backbone.state_dict().values())


def test_resnet18_batch_norms_never_update_their_statistics_even_when_trained():
    torch.manual_seed(0)
    enc = encoder("resnet18", ["cam"], 64, frozen=False)
    backbone = enc.encoders["cam"].backbone
    before = {k: t.clone() for k, t in backbone.state_dict().items() if "running" in k}
    enc.train()
    obs = images(["cam"], 4, 64)
    enc(obs).sum().backward()
    assert all(torch.equal(t, before[k]) for k, t in backbone.state_dict().items() if "running" in k)
    assert backbone.bn1.weight.grad is not None  # the affine part trains when not frozen
    # Same arithmetic in train and eval mode: a batch of 1 gives its row of a batch of 4.
    with torch.no_grad():
        full = enc.encoders["cam"].backbone_features(obs["cam"])
        enc.eval()
        one = enc.encoders["cam"].backbone_features(obs["cam"][2:3])
    torch.testing.assert_close(one, full[2:3], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "size, kernel, stride, pads",
    [(64, 3, 2, (0, 1)), (65, 3, 2, (1, 1)), (64, 3, 1, (1, 1)), (64, 1, 2, (0, 0)), (63, 1, 2, (0, 0)), (64, 7, 2, (2, 3))],
)
def test_same_padding_is_jax_s(size, kernel, stride, pads):
    # TensorFlow/JAX "SAME": ceil(size / stride) outputs, the odd pixel of padding at the end.
    assert same_padding(size, kernel, stride) == pads


def test_spatial_learned_embeddings_is_a_per_channel_weighted_sum():
    torch.manual_seed(0)
    sle = SpatialLearnedEmbeddings(channels=3, height=4, width=5, num_features=2)
    f = torch.randn(2, 3, 4, 5)
    out = sle(f)
    assert out.shape == (2, 6)
    expected = (f[:, 1] * sle.kernel[1, :, :, 0]).sum(dim=(1, 2))  # channel 1, kernel 0
    torch.testing.assert_close(out[:, 1 * 2 + 0], expected)


def test_frozen_encoder_trains_only_its_heads_and_encode_frozen_has_no_graph():
    enc = encoder("resnet10", ["wrist", "side"], 64)
    assert enc.frozen
    for cam in enc.encoders.values():
        assert not any(p.requires_grad for p in cam.backbone.parameters())
    trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert trainable and all(".head." in n for n in trainable)

    enc.train()
    assert all(not cam.backbone.training and cam.head.training for cam in enc.encoders.values())

    obs = images(["wrist", "side"], 2, 64)
    features = enc.encode_frozen(obs)
    assert features.shape == (2, *enc.feature_shape) == (2, 2, 512, 2, 2)
    assert not features.requires_grad and features.grad_fn is None
    # The heads on shared features are the full forward.
    torch.testing.assert_close(enc.embed(features), enc(obs))

    enc(obs).sum().backward()
    for name, p in enc.named_parameters():
        assert (p.grad is not None) == (".head." in name), name


def test_small_encoder_trains_end_to_end_and_has_no_frozen_path():
    enc = encoder("small", ["cam"], 64)
    assert not enc.frozen
    assert all(p.requires_grad for p in enc.parameters())
    enc({"cam": images(["cam"], 2, 64)["cam"]}).sum().backward()
    assert all(p.grad is not None for p in enc.parameters())
    with pytest.raises(RuntimeError, match="frozen"):
        enc.encode_frozen(images(["cam"], 1, 64))


@pytest.mark.parametrize("kind", ["resnet10", "resnet18"])
def test_frozen_small_encoder_and_trainable_resnets_are_allowed(kind):
    assert encoder("small", ["cam"], 64, frozen=True).frozen
    enc = encoder(kind, ["cam"], 64, frozen=False)
    assert not enc.frozen and all(p.requires_grad for p in enc.parameters())


def test_frozen_resnet18_trains_only_its_heads():
    enc = encoder("resnet18", ["wrist"], 64)
    assert enc.frozen and enc.feature_shape == (1, 512, 2, 2)
    assert {n for n, p in enc.named_parameters() if p.requires_grad} == {
        n for n, _ in enc.named_parameters() if ".head." in n
    }
    enc.train()
    assert not enc.encoders["wrist"].backbone.training


def test_single_image_small_encoder_is_a_plain_module():
    torch.manual_seed(0)
    enc = SmallConvEncoder(EncoderConfig(image_size=128))
    with torch.no_grad():
        assert enc(images(["c"], 1, 128)["c"]).shape == (1, 256)


def test_camera_names_are_checked():
    with pytest.raises(ValueError, match="repeat"):
        MultiCameraEncoder(["a", "a"], EncoderConfig())
    with pytest.raises(ValueError, match="'a.b'"):
        MultiCameraEncoder(["a.b"], EncoderConfig())
    with pytest.raises(ValueError, match="at least one"):
        MultiCameraEncoder([], EncoderConfig())


def test_encoder_config_defaults_and_validation():
    assert EncoderConfig().kind == "small" and not EncoderConfig().is_frozen
    assert EncoderConfig(kind="resnet10").is_frozen and EncoderConfig(kind="resnet18").is_frozen
    assert not EncoderConfig(kind="resnet10", frozen=False).is_frozen
    assert not EncoderConfig(kind="resnet18", frozen=False).is_frozen
    assert SACConfig().encoder == EncoderConfig()
    with pytest.raises(ValueError, match="weights_sha256 is required"):
        EncoderConfig(weights_path="w.npz")
    with pytest.raises(ValueError, match="64 hex"):
        EncoderConfig(weights_path="w.npz", weights_sha256="abc")
    with pytest.raises(ValueError, match="weights_path is not"):
        EncoderConfig(weights_sha256="0" * 64)
    assert EncoderConfig(weights_path="w.npz", weights_sha256="AB" * 32).weights_sha256 == "ab" * 32
    with pytest.raises(ValueError, match="'small', 'resnet10', 'resnet18', got 'resnet50'"):
        EncoderConfig(kind="resnet50")


def test_encoder_section_loads_from_yaml_data_with_named_errors():
    sac = from_dict(SACConfig, {"encoder": {"kind": "resnet10", "image_size": 96}}, "learner.sac")
    assert sac.encoder.kind == "resnet10" and sac.encoder.image_size == 96
    assert from_dict(SACConfig, {"encoder": {"kind": "resnet18"}}, "learner.sac").encoder.is_frozen
    with pytest.raises(SchemaError, match=r"learner\.sac\.encoder\.kin.*'kind'"):
        from_dict(SACConfig, {"encoder": {"kin": "small"}}, "learner.sac")
    with pytest.raises(SchemaError, match=r"learner\.sac\.encoder\.kind"):
        from_dict(SACConfig, {"encoder": {"kind": "vit"}}, "learner.sac")


def test_every_config_kind_has_a_backbone_and_the_pretrained_ones_a_converter():
    from hilrl.policies.encoders import BACKBONES, ENCODERS, PRETRAINED_KINDS
    from hilrl.tools.convert_encoder import FORMATS
    from hilrl.transport.sections.sac import ENCODER_KINDS, PRETRAINED_ENCODER_KINDS

    assert set(BACKBONES) == set(ENCODERS) == set(ENCODER_KINDS)
    assert set(PRETRAINED_KINDS) == set(PRETRAINED_ENCODER_KINDS)
    assert {FORMATS[fmt].kind for fmt in PRETRAINED_KINDS.values()} == set(PRETRAINED_KINDS)
