"""Encoder weight files: .npz only, SHA-256 checked before parsing, never unpickled."""

from __future__ import annotations

import hashlib
import logging
import pathlib
import pickle

import numpy as np
import pytest
import torch

from hilrl.policies.encoders import (
    MultiCameraEncoder,
    ResNet10,
    ResNet18,
    load_encoder_weights,
    load_state_arrays,
    read_encoder_weights,
    save_encoder_weights,
)
from hilrl.transport.sections.sac import EncoderConfig


def noise(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, generator=gen)


def sha256_file(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", ["small", "resnet10", "resnet18"])
def test_backbone_weights_round_trip_through_the_config(tmp_path, kind):
    torch.manual_seed(0)
    source = MultiCameraEncoder(["cam"], EncoderConfig(kind=kind, image_size=64))
    path = tmp_path / "backbone.npz"
    digest = save_encoder_weights(source.encoders["cam"].backbone, path)
    assert digest == sha256_file(path)
    assert not list(tmp_path.glob("*.tmp"))  # written atomically, no leftovers

    torch.manual_seed(1)  # different random init everywhere else
    config = EncoderConfig(kind=kind, image_size=64, frozen=True, weights_path=str(path), weights_sha256=digest)
    loaded = MultiCameraEncoder(["wrist", "side"], config)
    x = noise(2, 64)
    want = source.encoders["cam"].backbone_features(x)
    for name in ("wrist", "side"):
        assert torch.equal(loaded.encoders[name].backbone_features(x), want)
    # Only the backbone comes from the file; the heads keep their own (trainable) init.
    assert not torch.equal(loaded.encoders["wrist"].head.linear.weight, source.encoders["cam"].head.linear.weight)


def test_whole_module_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    a = MultiCameraEncoder(["wrist", "side"], EncoderConfig(image_size=64))
    torch.manual_seed(1)
    b = MultiCameraEncoder(["wrist", "side"], EncoderConfig(image_size=64))
    obs = {"wrist": noise(2, 64, 1), "side": noise(2, 64, 2)}
    assert not torch.equal(a(obs), b(obs))
    digest = save_encoder_weights(a, tmp_path / "enc.npz")
    load_encoder_weights(b, tmp_path / "enc.npz", digest)
    assert torch.equal(a(obs), b(obs))


def test_weight_file_holds_plain_arrays_named_by_state_dict_keys(tmp_path):
    backbone = ResNet10()
    save_encoder_weights(backbone, tmp_path / "r10.npz")
    with np.load(tmp_path / "r10.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(backbone.state_dict())
        assert npz["conv1.weight"].shape == (64, 3, 7, 7)
        assert npz["layer2.shortcut.0.weight"].dtype == np.float32


def test_hash_mismatch_is_refused_naming_the_file_and_both_hashes(tmp_path):
    path = tmp_path / "backbone.npz"
    actual = save_encoder_weights(ResNet10(), path)
    expected = "0" * 64
    config = EncoderConfig(kind="resnet10", image_size=64, weights_path=str(path), weights_sha256=expected)
    with pytest.raises(ValueError) as info:
        MultiCameraEncoder(["cam"], config)
    message = str(info.value)
    assert str(path) in message and expected in message and actual in message


def test_missing_file_is_refused_naming_the_path(tmp_path):
    path = tmp_path / "nowhere" / "resnet10.npz"
    config = EncoderConfig(kind="resnet10", image_size=64, weights_path=str(path), weights_sha256="a" * 64)
    with pytest.raises(FileNotFoundError, match=str(path)):
        MultiCameraEncoder(["cam"], config)


class _Trap:
    """Unpickling this touches a marker file: the proof that a loader ran pickle."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_a_pickle_is_refused_without_being_unpickled_even_with_its_right_hash(tmp_path):
    marker = tmp_path / "unpickled"
    path = tmp_path / "weights.npz"
    path.write_bytes(pickle.dumps({"conv1.weight": _Trap(marker)}))
    with pytest.raises(ValueError, match="pickled data is refused") as info:
        read_encoder_weights(path, sha256_file(path))
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_an_npz_with_pickled_object_arrays_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "unpickled"
    path = tmp_path / "weights.npz"
    trap = np.empty(1, dtype=object)
    trap[0] = _Trap(marker)
    np.savez(path, **{"conv1.weight": trap})  # numpy pickles object arrays into the member
    with pytest.raises(ValueError, match="conv1.weight"):
        read_encoder_weights(path, sha256_file(path))
    assert not marker.exists()


def test_a_single_npy_array_is_not_a_weights_file(tmp_path):
    path = tmp_path / "weights.npz"
    with path.open("wb") as f:
        np.save(f, np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="single .npy"):
        read_encoder_weights(path, sha256_file(path))


def test_keys_shapes_and_values_must_match_the_module(tmp_path):
    backbone = ResNet10()
    arrays = {k: v.numpy().copy() for k, v in backbone.state_dict().items()}
    before = backbone.conv1.weight.detach().clone()

    missing = {k: v for k, v in arrays.items() if k != "norm1.bias"}
    with pytest.raises(ValueError, match="missing.*norm1.bias"):
        load_state_arrays(backbone, missing, "w.npz")
    with pytest.raises(ValueError, match="unexpected.*fc.weight"):
        load_state_arrays(backbone, arrays | {"fc.weight": np.zeros((1000, 512), np.float32)}, "w.npz")
    with pytest.raises(ValueError, match="conv1.weight has shape"):
        load_state_arrays(backbone, arrays | {"conv1.weight": np.zeros((64, 3, 3, 3), np.float32)}, "w.npz")
    bad = arrays["layer4.conv2.weight"].copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="layer4.conv2.weight contains NaN"):
        load_state_arrays(backbone, arrays | {"layer4.conv2.weight": bad}, "w.npz")
    assert torch.equal(backbone.conv1.weight, before)  # refused loads change nothing


def test_no_path_means_random_init_with_a_warning_for_resnet10(caplog):
    with caplog.at_level(logging.WARNING, logger="hilrl.policies.encoders"):
        enc = MultiCameraEncoder(["cam"], EncoderConfig(kind="resnet10", image_size=64))
    assert "randomly initialised" in caplog.text
    assert enc({"cam": noise(1, 64)}).shape == (1, 256)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hilrl.policies.encoders"):
        MultiCameraEncoder(["cam"], EncoderConfig(kind="small", image_size=64))
    assert caplog.text == ""  # the small encoder trains from scratch: nothing to warn about
    with caplog.at_level(logging.WARNING, logger="hilrl.policies.encoders"):
        MultiCameraEncoder(["cam"], EncoderConfig(kind="small", image_size=64, frozen=True))
    assert "never learn" in caplog.text


def test_no_path_warns_for_resnet18_too(caplog):
    with caplog.at_level(logging.WARNING, logger="hilrl.policies.encoders"):
        MultiCameraEncoder(["cam"], EncoderConfig(kind="resnet18", image_size=64))
    assert "resnet18 encoder without weights_path" in caplog.text


def test_the_same_weights_always_give_the_same_file(tmp_path):
    torch.manual_seed(0)
    backbone = ResNet10()
    first = save_encoder_weights(backbone, tmp_path / "a.npz")
    second = save_encoder_weights(backbone, tmp_path / "b.npz")  # members carry no timestamp
    assert first == second and (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_the_pre_flight_check_says_how_to_make_or_pin_a_pretrained_file(tmp_path):
    from hilrl.policies.encoders import check_weights_file
    from hilrl.transport.schema import SchemaError

    missing = tmp_path / "r18.npz"
    config = EncoderConfig(kind="resnet18", weights_path=str(missing), weights_sha256="0" * 64)
    with pytest.raises(SchemaError, match="not found.*hilrl convert-encoder --from torchvision-resnet18 SOURCE") as info:
        check_weights_file(config)
    assert info.value.key == "learner.sac.encoder.weights_path"
    save_encoder_weights(ResNet18(), missing)
    with pytest.raises(SchemaError, match="SHA-256 mismatch.*the hash `hilrl convert-encoder` printed"):
        check_weights_file(config)
