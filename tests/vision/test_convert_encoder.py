"""`hilrl convert-encoder`: public checkpoints -> hash-pinned backbone weights, exactly.

The source checkpoints are synthetic (random tensors) but have the real key layouts and shapes.
Each is loaded, by its own key names, into a small independent implementation of its source
architecture written here as the source code defines it:

  - the PyTorch port of HIL-SERL's ResNet-10 that LeRobot loads from huggingface.co/helper2424/resnet10
    (github.com/helper2424/resnet10, resnet_10/modeling_resnet.py: Conv2dJax / MaxPool2dJax "SAME"
    padding, MyGroupNorm(4 groups), embedder + encoder.stages), saved as safetensors;
  - torchvision's resnet18 (torchvision/models/resnet.py: ResNet(BasicBlock, [2, 2, 2, 2]) with
    nn.BatchNorm2d, in eval mode), saved with torch.save as torchvision's .pth is.

The converted backbone's feature maps must match the reference model's on random images (the
reference gets ImageNet-normalised input, as LeRobot and torchvision feed it; ours normalises
inside). CPU, seeded; no transformers or torchvision needed (neither is imported).
"""

from __future__ import annotations

import hashlib
import math
import pathlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import save_file
from torch import nn

from hilrl.policies.encoders import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MultiCameraEncoder,
    ResNet10,
    ResNet18,
    check_weights_file,
    read_encoder_weights,
)
from hilrl.tools.cli import SUBCOMMANDS
from hilrl.tools.cli import main as hilrl
from hilrl.tools.convert_encoder import is_safetensors
from hilrl.transport.schema import SchemaError, from_dict
from hilrl.transport.sections.sac import EncoderConfig

# ------------------------------------------------------------------------------------------
# Reference 1: the HIL-SERL ResNet-10 port (helper2424/resnet10, modeling_resnet.py), minus
# transformers' PreTrainedModel wrapper (which adds no tensors).
# ------------------------------------------------------------------------------------------


def _jax_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    # As the port's _compute_padding: pad = max(0, (ceil(n / s) - 1) * s + k - n), more at the end.
    pad = max(0, (math.ceil(size / stride) - 1) * stride + kernel - size)
    return pad // 2, pad - pad // 2


class PortMaxPool2dJax(nn.Module):
    def __init__(self, kernel_size: int, stride: int = 2):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, x):
        top, bottom = _jax_same_padding(x.shape[2], self.kernel_size, self.stride)
        left, right = _jax_same_padding(x.shape[3], self.kernel_size, self.stride)
        x = F.pad(x, (left, right, top, bottom), value=-float("inf"))
        return nn.MaxPool2d(kernel_size=3, stride=2, padding=0)(x)


class PortConv2dJax(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, bias=False):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride, padding=0, bias=bias)

    def forward(self, x):
        top, bottom = _jax_same_padding(x.shape[2], self.kernel_size, self.stride)
        left, right = _jax_same_padding(x.shape[3], self.kernel_size, self.stride)
        return self.conv(F.pad(x, (left, right, top, bottom)))


class PortGroupNorm(nn.Module):
    """The port's MyGroupNorm (since 2025-04-24; before, a bare nn.GroupNorm: `legacy`)."""

    def __init__(self, num_groups, num_channels, eps=1e-5):
        super().__init__()
        self.group_norm = nn.GroupNorm(num_groups, num_channels, eps)

    def forward(self, x):
        return self.group_norm(x)


def _port_norm(channels: int, legacy: bool) -> nn.Module:
    return nn.GroupNorm(4, channels, eps=1e-5) if legacy else PortGroupNorm(4, channels)


class PortBasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1, legacy=False):
        super().__init__()
        self.conv1 = PortConv2dJax(in_channels, out_channels, kernel_size=3, stride=stride)
        self.norm1 = _port_norm(out_channels, legacy)
        self.conv2 = PortConv2dJax(out_channels, out_channels, kernel_size=3, stride=1)
        self.norm2 = _port_norm(out_channels, legacy)
        self.shortcut = None
        if in_channels != out_channels:
            self.shortcut = nn.Sequential(
                PortConv2dJax(in_channels, out_channels, kernel_size=1, stride=stride),
                _port_norm(out_channels, legacy),
            )

    def forward(self, x):
        identity = x
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        if self.shortcut is not None:
            identity = self.shortcut(identity)
        return F.relu(out + identity)


class PortEncoder(nn.Module):
    def __init__(self, embedding_size=64, hidden_sizes=(64, 128, 256, 512), legacy=False):
        super().__init__()
        self.stages = nn.ModuleList()
        for i, size in enumerate(hidden_sizes):
            in_ch = embedding_size if i == 0 else hidden_sizes[i - 1]
            self.stages.append(PortBasicBlock(in_ch, size, stride=1 if i == 0 else 2, legacy=legacy))

    def forward(self, x):
        for stage in self.stages:
            x = stage(x)
        return x


class PortResNet10(nn.Module):
    """forward: ImageNet-normalised (B, 3, H, W) -> last_hidden_state (B, 512, h, w)."""

    def __init__(self, legacy: bool = False):
        super().__init__()
        self.embedder = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False),
            _port_norm(64, legacy),
            nn.ReLU(),
            PortMaxPool2dJax(kernel_size=3, stride=2),
        )
        self.encoder = PortEncoder(legacy=legacy)

    def forward(self, x):
        return self.encoder(self.embedder(x))


# ------------------------------------------------------------------------------------------
# Reference 2: torchvision's resnet18 (torchvision/models/resnet.py), real nn.BatchNorm2d.
# ------------------------------------------------------------------------------------------


class TVBasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class TVResNet18(nn.Module):
    """features: ImageNet-normalised (B, 3, H, W) -> layer4's output (B, 512, h, w)."""

    def __init__(self):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 2)
        self.layer2 = self._make_layer(128, 2, stride=2)
        self.layer3 = self._make_layer(256, 2, stride=2)
        self.layer4 = self._make_layer(512, 2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, 1000)

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )
        layers = [TVBasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [TVBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def features(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------


def randomise(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Fill every float tensor of model's state_dict with random values of a sensible scale (norm
    scales around 1, variances positive); returns the state_dict (the model holds the same)."""
    gen = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    with torch.no_grad():
        for key, t in state.items():
            if not t.is_floating_point():
                continue
            if key.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif t.dim() == 1 and key.endswith("weight"):
                t.copy_(torch.rand(t.shape, generator=gen) * 0.5 + 0.75)
            elif t.dim() == 1:  # biases, running means
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
            else:  # conv and linear weights: He-scaled
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=gen) * math.sqrt(2.0 / fan_in))
    return state


def normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def sha256_file(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def convert(capsys, fmt: str, source: pathlib.Path, out: pathlib.Path, *extra: str) -> tuple[int, str, str]:
    """Run `hilrl convert-encoder` in-process: (exit code, stdout, stderr)."""
    code = hilrl(["convert-encoder", "--from", fmt, str(source), str(out), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def backbone_from(path: pathlib.Path, sha: str, backbone: nn.Module) -> nn.Module:
    state = {k: torch.from_numpy(v) for k, v in read_encoder_weights(path, sha).items()}
    backbone.load_state_dict(state, strict=True)
    return backbone.eval()


@pytest.fixture(scope="module")
def port():
    torch.manual_seed(0)
    model = PortResNet10().eval()
    randomise(model, 1)
    return model


@pytest.fixture(scope="module")
def tv18():
    torch.manual_seed(0)
    model = TVResNet18().eval()
    randomise(model, 2)
    return model


def port_checkpoint(model: PortResNet10, path: pathlib.Path) -> pathlib.Path:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def tv_checkpoint(model: TVResNet18, path: pathlib.Path) -> pathlib.Path:
    torch.save(model.state_dict(), path)
    return path


# ------------------------------------------------------------------------------------------
# Exact conversion
# ------------------------------------------------------------------------------------------


def test_the_reference_layouts_are_the_real_ones(port, tv18):
    # A sample of the published key names and shapes (helper2424/resnet10 model.safetensors;
    # torchvision resnet18-f37072fd.pth), so the references cannot drift from them unnoticed.
    p = {k: tuple(v.shape) for k, v in port.state_dict().items()}
    assert p["embedder.0.weight"] == (64, 3, 7, 7)
    assert p["embedder.1.group_norm.weight"] == (64,)
    assert p["encoder.stages.0.conv1.conv.weight"] == (64, 64, 3, 3)
    assert p["encoder.stages.3.shortcut.0.conv.weight"] == (512, 256, 1, 1)
    assert p["encoder.stages.3.shortcut.1.group_norm.bias"] == (512,)
    assert "encoder.stages.0.shortcut.0.conv.weight" not in p and len(p) == 36
    assert sum(v.numel() for v in port.parameters()) == 4_905_792  # the model card's count
    t = {k: tuple(v.shape) for k, v in tv18.state_dict().items()}
    assert t["conv1.weight"] == (64, 3, 7, 7) and t["bn1.running_var"] == (64,)
    assert t["layer2.0.downsample.0.weight"] == (128, 64, 1, 1)
    assert t["layer4.1.bn2.num_batches_tracked"] == () and t["fc.weight"] == (1000, 512)
    assert sum(v.numel() for v in tv18.parameters()) == 11_689_512  # torchvision's resnet18


@pytest.mark.parametrize("size", [128, 75])  # even sizes pad "SAME" asymmetrically, odd ones not
def test_hilserl_resnet10_port_converts_to_identical_feature_maps(tmp_path, capsys, port, size):
    source = port_checkpoint(port, tmp_path / "model.safetensors")
    out = tmp_path / "weights" / "resnet10_hilserl.npz"
    code, stdout, stderr = convert(capsys, "hilserl-resnet10", source, out)
    assert code == 0, stderr
    sha = sha256_file(out)
    assert sha in stdout
    ours = backbone_from(out, sha, ResNet10())
    x = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(size))
    with torch.no_grad():
        want = port(normalise(x))
        got = ours(x)
    assert got.shape == want.shape == (3, 512, *ours.output_shape(size)[1:])
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert want.abs().max() > 0.1  # not trivially zero


def test_the_ports_older_key_layout_converts_to_the_same_file(tmp_path, capsys, port):
    # Before 2025-04-24 the port's norms were bare nn.GroupNorm (no `.group_norm.` level).
    legacy = PortResNet10(legacy=True)
    legacy.load_state_dict({k.replace(".group_norm.", "."): v for k, v in port.state_dict().items()})
    assert "embedder.1.weight" in legacy.state_dict()
    new = port_checkpoint(port, tmp_path / "new.safetensors")
    old = port_checkpoint(legacy, tmp_path / "old.safetensors")
    assert convert(capsys, "hilserl-resnet10", new, tmp_path / "new.npz")[0] == 0
    assert convert(capsys, "hilserl-resnet10", old, tmp_path / "old.npz")[0] == 0
    assert (tmp_path / "new.npz").read_bytes() == (tmp_path / "old.npz").read_bytes()


@pytest.mark.parametrize("size", [128, 75])
def test_torchvision_resnet18_converts_to_identical_feature_maps(tmp_path, capsys, tv18, size):
    source = tv_checkpoint(tv18, tmp_path / "resnet18-f37072fd.pth")
    out = tmp_path / "resnet18.npz"
    code, stdout, stderr = convert(capsys, "torchvision-resnet18", source, out)
    assert code == 0, stderr
    sha = sha256_file(out)
    ours = backbone_from(out, sha, ResNet18())
    with np.load(out, allow_pickle=False) as npz:  # the classifier and counters are left out
        assert not [k for k in npz.files if k.startswith("fc.") or k.endswith("num_batches_tracked")]
        assert all(npz[k].dtype == np.float32 for k in npz.files)
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(size))
    with torch.no_grad():
        want = tv18.features(normalise(x))
        got = ours(x)
    assert got.shape == want.shape == (2, 512, *ours.output_shape(size)[1:])
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_a_resnet18_pth_without_batch_counters_converts_too(tmp_path, capsys, tv18):
    # Checkpoints saved before BatchNorm had num_batches_tracked lack it; it is not needed.
    state = {k: v for k, v in tv18.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pth")
    assert convert(capsys, "torchvision-resnet18", tmp_path / "old.pth", tmp_path / "old.npz")[0] == 0
    assert convert(capsys, "torchvision-resnet18", tv_checkpoint(tv18, tmp_path / "new.pth"), tmp_path / "new.npz")[0] == 0
    assert (tmp_path / "old.npz").read_bytes() == (tmp_path / "new.npz").read_bytes()


def test_a_torchvision_checkpoint_saved_as_safetensors_is_read_by_content(tmp_path, capsys, tv18):
    path = tmp_path / "resnet18.bin"  # the name says nothing: the content decides
    save_file({k: v.contiguous() for k, v in tv18.state_dict().items()}, str(path))
    assert is_safetensors(path) and not is_safetensors(tv_checkpoint(tv18, tmp_path / "r.pth"))
    assert convert(capsys, "torchvision-resnet18", path, tmp_path / "a.npz")[0] == 0
    assert convert(capsys, "torchvision-resnet18", tmp_path / "r.pth", tmp_path / "b.npz")[0] == 0
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_converting_twice_gives_the_same_bytes_and_hash(tmp_path, capsys, port):
    source = port_checkpoint(port, tmp_path / "model.safetensors")
    first = convert(capsys, "hilserl-resnet10", source, tmp_path / "a.npz")[1]
    second = convert(capsys, "hilserl-resnet10", source, tmp_path / "b.npz")[1]
    assert sha256_file(tmp_path / "a.npz") == sha256_file(tmp_path / "b.npz")
    assert [line for line in first.splitlines() if "weights_sha256" in line] == [
        line for line in second.splitlines() if "weights_sha256" in line
    ]


# ------------------------------------------------------------------------------------------
# The printed config lines
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt, kind", [("hilserl-resnet10", "resnet10"), ("torchvision-resnet18", "resnet18")])
def test_the_printed_yaml_is_a_valid_encoder_section_pinning_the_file(tmp_path, capsys, port, tv18, fmt, kind):
    source = (port_checkpoint(port, tmp_path / "model.safetensors") if kind == "resnet10"
              else tv_checkpoint(tv18, tmp_path / "resnet18.pth"))
    out = tmp_path / "w" / f"{kind}.npz"
    code, stdout, _ = convert(capsys, fmt, source, out)
    assert code == 0
    section = yaml.safe_load(stdout)["learner"]["sac"]["encoder"]
    assert set(section) == {"kind", "weights_path", "weights_sha256", "frozen"}
    config = from_dict(EncoderConfig, {**section, "image_size": 64}, "learner.sac.encoder")
    assert config.kind == kind and config.is_frozen and config.weights_path == str(out)
    assert config.weights_sha256 == sha256_file(out)
    check_weights_file(config)  # what the learner checks before it starts
    encoder = MultiCameraEncoder(["wrist"], config)  # reads and checks the pinned file
    reference = port if kind == "resnet10" else tv18
    x = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = (reference if kind == "resnet10" else reference.features)(normalise(x.permute(0, 3, 1, 2) / 255.0))
        torch.testing.assert_close(encoder.encoders["wrist"].backbone_features(x), want, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------------
# Refusals: clear errors, exit 2, no traceback, nothing written
# ------------------------------------------------------------------------------------------


def _refused(capsys, fmt, source, out, *extra) -> str:
    code, stdout, stderr = convert(capsys, fmt, source, out, *extra)
    assert code == 2 and not stdout
    assert stderr.startswith("hilrl convert-encoder: error: ") and "Traceback" not in stderr
    assert not out.exists()
    return stderr


def test_a_missing_key_is_refused_naming_it(tmp_path, capsys, port):
    state = {k: v.contiguous() for k, v in port.state_dict().items() if k != "encoder.stages.2.shortcut.0.conv.weight"}
    save_file(state, str(tmp_path / "model.safetensors"))
    err = _refused(capsys, "hilserl-resnet10", tmp_path / "model.safetensors", tmp_path / "w.npz")
    assert "missing encoder.stages.2.shortcut.0.conv.weight" in err and str(tmp_path / "model.safetensors") in err


def test_an_unexpected_key_is_refused_naming_it(tmp_path, capsys, tv18):
    state = dict(tv18.state_dict()) | {"layer5.0.conv1.weight": torch.zeros(1)}
    torch.save(state, tmp_path / "r.pth")
    err = _refused(capsys, "torchvision-resnet18", tmp_path / "r.pth", tmp_path / "w.npz")
    assert "unexpected layer5.0.conv1.weight" in err


def test_a_misshapen_tensor_is_refused_naming_it_and_both_shapes(tmp_path, capsys, tv18):
    state = dict(tv18.state_dict())
    state["layer3.1.conv2.weight"] = state["layer3.1.conv2.weight"][:, :128].clone()
    torch.save(state, tmp_path / "r.pth")
    err = _refused(capsys, "torchvision-resnet18", tmp_path / "r.pth", tmp_path / "w.npz")
    assert "layer3.1.conv2.weight" in err and "(256, 128, 3, 3)" in err and "(256, 256, 3, 3)" in err


def test_a_non_finite_tensor_is_refused(tmp_path, capsys, port):
    state = {k: v.clone().contiguous() for k, v in port.state_dict().items()}
    state["encoder.stages.1.norm2.group_norm.weight"][3] = float("nan")
    save_file(state, str(tmp_path / "m.safetensors"))
    err = _refused(capsys, "hilserl-resnet10", tmp_path / "m.safetensors", tmp_path / "w.npz")
    assert "encoder.stages.1.norm2.group_norm.weight contains NaN" in err


def test_the_wrong_format_is_refused_with_the_right_one_named(tmp_path, capsys, tv18):
    err = _refused(capsys, "hilserl-resnet10", tv_checkpoint(tv18, tmp_path / "r.pth"), tmp_path / "w.npz")
    assert "missing embedder.0.weight" in err and "use --from torchvision-resnet18" in err


class _Trap:
    """Unpickling this touches a marker file: the proof that a loader ran pickle."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_a_pth_with_a_pickled_object_is_refused_without_unpickling_it(tmp_path, capsys, tv18):
    marker = tmp_path / "unpickled"
    state = dict(tv18.state_dict()) | {"conv1.weight": _Trap(marker)}
    torch.save(state, tmp_path / "r.pth")  # torch.save pickles the object's __reduce__
    err = _refused(capsys, "torchvision-resnet18", tmp_path / "r.pth", tmp_path / "w.npz")
    assert "refused" in err and "weights_only" in err
    assert not marker.exists()


def test_a_missing_source_or_an_existing_output_is_refused(tmp_path, capsys, tv18):
    err = _refused(capsys, "torchvision-resnet18", tmp_path / "nope.pth", tmp_path / "w.npz")
    assert f"checkpoint not found: {tmp_path / 'nope.pth'}" in err
    source = tv_checkpoint(tv18, tmp_path / "r.pth")
    (tmp_path / "w.npz").write_bytes(b"keep me")
    code, _, err = convert(capsys, "torchvision-resnet18", source, tmp_path / "w.npz")
    assert code == 2 and "refusing to overwrite" in err and (tmp_path / "w.npz").read_bytes() == b"keep me"
    assert convert(capsys, "torchvision-resnet18", source, tmp_path / "w.npz", "--force")[0] == 0
    _refused(capsys, "torchvision-resnet18", source, tmp_path / "w.pt")  # not an .npz name


def test_the_command_is_registered_and_an_unknown_format_is_a_usage_error(capsys):
    assert "convert-encoder" in SUBCOMMANDS
    with pytest.raises(SystemExit) as info:
        hilrl(["convert-encoder", "--from", "timm-resnet50", "a", "b.npz"])
    assert info.value.code == 2 and "invalid choice" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# The shipped real-cell config
# ------------------------------------------------------------------------------------------


def test_the_franka_config_names_the_documented_file_and_how_to_make_it(tmp_path, monkeypatch):
    from hilrl.configs import config_path
    from hilrl.transport.config import load_document, section
    from hilrl.transport.sections.learner import LearnerConfig

    text = config_path("franka_peg_insert").read_text()
    command = "hilrl convert-encoder --from hilserl-resnet10 model.safetensors weights/resnet10_hilserl.npz"
    assert command in text and "huggingface.co/helper2424/resnet10" in text
    encoder = section(load_document(config_path("franka_peg_insert")), "learner", LearnerConfig).sac.encoder
    assert encoder.kind == "resnet10" and encoder.weights_path == "weights/resnet10_hilserl.npz"
    monkeypatch.chdir(tmp_path)  # no weights/ here: the learner's pre-flight check names key and command
    with pytest.raises(SchemaError) as info:
        check_weights_file(encoder)
    assert info.value.key == "learner.sac.encoder.weights_path"
    assert "not found" in str(info.value)
    assert "hilrl convert-encoder --from hilserl-resnet10 SOURCE weights/resnet10_hilserl.npz" in str(info.value)
