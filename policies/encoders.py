"""Image encoders for the SAC/RLPD agent, their weight files, and DrQ random-shift augmentation.

Layout (one encoder per camera, as in the reference systems):

    image (B, H, W, 3) uint8 or (B, 3, H, W) float in [0, 1]
      -> backbone: SmallConvBackbone | ResNet10 | ResNet18   (frozen or trained; weights from a file)
      -> feature map (B, C, h, w) float32
      -> head: SpatialLearnedEmbeddings (B, C*K) -> Linear -> LayerNorm -> tanh   (always trained)
      -> features (B, feature_dim)
    MultiCameraEncoder: concat over cameras in the order given -> (B, n_cams * feature_dim)

`frozen` freezes the backbone only. The head stays trainable on purpose: it is what turns a
generic ImageNet feature map into task features (the reference stops the gradient at the
ResNet's output and trains the spatial embeddings and bottleneck), and a frozen random projection
would throw information away. A learner computes the frozen part once per batch with
`MultiCameraEncoder.encode_frozen` and runs the cheap head (`embed`) inside each loss.

Each camera has its own backbone and head (no weight sharing): cameras see different scenes (a
wrist view and a side view) and the reference does the same. With a frozen backbone the cost is
memory only (4.9M parameters per camera for resnet10).

Weight files never pickle: `.npz` archives of plain numeric arrays, named by the module's
state_dict keys, read with numpy.load(allow_pickle=False) after a SHA-256 check of the exact
bytes that are then parsed. `save_encoder_weights` writes them and returns the hash to put in the
config; `hilrl convert-encoder` (tools/convert_encoder.py) makes them from public checkpoints:
LeRobot's PyTorch port of HIL-SERL's ResNet-10 (resnet10) and torchvision's ResNet-18 (resnet18).
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hilrl.transport.schema import SchemaError
from hilrl.transport.sections.sac import EncoderConfig

logger = logging.getLogger(__name__)

# ImageNet channel statistics (RGB, on [0, 1] pixels): what ImageNet-pretrained weights expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Groups of every GroupNorm in ResNet10. The reference uses GroupNorm, not BatchNorm: no batch
# statistics, so a backbone behaves the same in train and eval mode and with batch size 1.
RESNET_NORM_GROUPS = 4

# eps of ResNet18's batch norms: torch.nn.BatchNorm2d's default, which torchvision's ResNet uses.
BATCH_NORM_EPS = 1e-5


# --------------------------------------------------------------------------------------------
# Input layout
# --------------------------------------------------------------------------------------------


def is_channels_last(images: torch.Tensor, channels_last: bool | None = None) -> bool:
    """Whether a (B, H, W, C) / (B, C, H, W) batch is channels-last.

    `channels_last` None infers it from the shape: the channel axis is the shorter of dims 1 and
    3 (an image has fewer channels than pixels per side). Equal sizes are ambiguous: ValueError.
    """
    if images.dim() != 4:
        raise ValueError(f"expected a 4-d image batch (B, H, W, C) or (B, C, H, W), got {tuple(images.shape)}")
    if channels_last is not None:
        return channels_last
    if images.shape[3] == images.shape[1]:
        raise ValueError(f"cannot tell the channel axis of shape {tuple(images.shape)}: pass channels_last")
    return images.shape[3] < images.shape[1]


def to_float_chw(images: torch.Tensor, image_size: int | None = None) -> torch.Tensor:
    """Camera images -> float32 (B, 3, H, W) in [0, 1], on the input's device.

    images: uint8 (B, H, W, 3) or (B, 3, H, W) with values 0..255, or a float tensor in either
    layout already scaled to [0, 1]. `image_size` (pixels) checks H = W = image_size.
    """
    if is_channels_last(images):
        images = images.permute(0, 3, 1, 2)
    if images.shape[1] != 3:
        raise ValueError(f"expected 3 colour channels, got image batch shape {tuple(images.shape)}")
    if image_size is not None and tuple(images.shape[2:]) != (image_size, image_size):
        raise ValueError(
            f"images are {images.shape[2]}x{images.shape[3]} pixels; this encoder was built for "
            f"{image_size}x{image_size} (EncoderConfig.image_size)"
        )
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    if images.is_floating_point():
        return images.to(torch.float32)
    raise TypeError(f"images must be uint8 or floating point, got {images.dtype}")


# --------------------------------------------------------------------------------------------
# Backbones: (B, 3, H, W) float32 in [0, 1] -> (B, C, h, w)
# --------------------------------------------------------------------------------------------


class SmallConvBackbone(nn.Module):
    """Four 3x3 convolutions (32 channels, strides 2, 2, 2, 1, ReLU): the CPU default.

    About 28k parameters and ~18M multiply-adds per 128x128 image. Inputs are centred (x - 0.5),
    as in DrQ. forward: (B, 3, H, W) float32 in [0, 1] -> (B, 32, ceil(H/8), ceil(W/8)).
    """

    channels = 32
    strides = (2, 2, 2, 1)

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = 3
        for stride in self.strides:
            conv = nn.Conv2d(width, self.channels, kernel_size=3, stride=stride, padding=1)
            # Orthogonal with the ReLU gain (DrQ's init): keeps activations at a steady scale
            # through the stack at random init, which matters when the backbone trains from scratch.
            nn.init.orthogonal_(conv.weight, gain=nn.init.calculate_gain("relu"))
            nn.init.zeros_(conv.bias)
            layers += [conv, nn.ReLU(inplace=True)]
            width = self.channels
        self.net = nn.Sequential(*layers)

    def output_shape(self, image_size: int) -> tuple[int, int, int]:
        """(C, h, w) of the feature map for a square image of `image_size` pixels."""
        side = image_size
        for stride in self.strides:
            side = (side - 1) // stride + 1  # 3x3 conv with padding 1
        return self.channels, side, side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x - 0.5)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding, in pixels, of JAX/TensorFlow "SAME" along one axis of `size`.

    The output has ceil(size / stride) positions; the total padding that needs is split with the
    extra pixel after (bottom / right). With stride 1 and an odd kernel this is (k//2, k//2), what
    PyTorch's padding=k//2 does; with stride 2 on an even size it is (0, 1) for a 3x3 kernel,
    where PyTorch's padding=1 would give (1, 1) and shift every window by one pixel.
    """
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """x (B, C, H, W) padded with `value` for a "SAME" window of `kernel` x `kernel` at `stride`."""
    top, bottom = same_padding(x.shape[2], kernel, stride)
    left, right = same_padding(x.shape[3], kernel, stride)
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


class BasicBlock(nn.Module):
    """ResNet-10 basic block: conv3x3(stride) -> GN -> ReLU -> conv3x3 -> GN, + shortcut, ReLU.

    The shortcut is conv1x1(stride) -> GN when the shape changes, else the identity. Padding is
    "SAME" as in the reference (flax nn.Conv's default; see same_padding): the strided 3x3 conv
    pads (0, 1) on even sizes; the stride-1 convs pad 1 on every side, the 1x1 shortcut none.
    forward: (B, in_ch, H, W) -> (B, out_ch, ceil(H/stride), ceil(W/stride)).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.stride = stride
        # Stride 1: "SAME" is PyTorch's symmetric padding=1. Stride 2: padded in forward.
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1 if stride == 1 else 0, bias=False)
        self.norm1 = nn.GroupNorm(RESNET_NORM_GROUPS, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(RESNET_NORM_GROUPS, out_ch)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False),
                nn.GroupNorm(RESNET_NORM_GROUPS, out_ch),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x if self.stride == 1 else pad_same(x, 3, self.stride))
        out = F.relu(self.norm1(out))
        out = self.norm2(self.conv2(out))
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + identity)


def resnet_output_side(image_size: int) -> int:
    """Side of a ResNet's final feature map for a square image (stride 32 in all: conv 7x7/2, max
    pool 3x3/2, then stages 2-4 with stride 2; each rounds up)."""
    side = (image_size - 1) // 2 + 1  # conv 7x7/2
    side = (side - 1) // 2 + 1  # maxpool 3x3/2
    for _ in range(3):
        side = (side - 1) // 2 + 1  # stages 2-4 stride 2
    return side


class ResNet10(nn.Module):
    """ResNet-10 backbone (the reference's "resnetv1-10"), without pooling or classifier.

    conv7x7/2 (64, padding 3) -> GN -> ReLU -> maxpool3x3/2 ("SAME") -> one BasicBlock per stage
    with 64, 128, 256, 512 channels (strides 1, 2, 2, 2). 4.9M parameters. The input is
    normalised with the ImageNet statistics first (constants, not part of the state_dict).
    forward: (B, 3, H, W) float32 in [0, 1] -> (B, 512, ceil(H/32), ceil(W/32)) (4x4 at 128).

    Layout and arithmetic are HIL-SERL's (serl_launcher/vision/resnet_v1.py, ResNetEncoder with
    stage_sizes (1, 1, 1, 1), norm "group": GroupNorm(4 groups, eps 1e-5); conv_init padding
    [(3, 3), (3, 3)], every other conv and the max pool padding "SAME"), which is also what
    LeRobot's PyTorch port of it computes (github.com/helper2424/resnet10, modeling_resnet.py:
    Conv2dJax / MaxPool2dJax; the weights on huggingface.co/helper2424/resnet10), so the port's
    weights converted by `hilrl convert-encoder --from hilserl-resnet10` give its feature maps.

    state_dict keys (= the key names of a weights .npz; all float32):
        conv1.weight (64, 3, 7, 7); norm1.weight, norm1.bias (64,);
        layer{1,2,3,4}.conv1.weight, layer{i}.conv2.weight (out, in, 3, 3);
        layer{i}.norm1.{weight,bias}, layer{i}.norm2.{weight,bias} (out,);
        layer{2,3,4}.shortcut.0.weight (out, in, 1, 1), layer{i}.shortcut.1.{weight,bias} (out,).
    """

    stage_channels = (64, 128, 256, 512)
    channels = 512

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.norm1 = nn.GroupNorm(RESNET_NORM_GROUPS, 64)
        width = 64
        for i, out_ch in enumerate(self.stage_channels, start=1):
            self.add_module(f"layer{i}", BasicBlock(width, out_ch, stride=1 if i == 1 else 2))
            width = out_ch
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def output_shape(self, image_size: int) -> tuple[int, int, int]:
        """(C, h, w) of the feature map for a square image of `image_size` pixels."""
        side = resnet_output_side(image_size)
        return self.channels, side, side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        x = F.relu(self.norm1(self.conv1(x)))
        x = F.max_pool2d(pad_same(x, 3, 2, value=-math.inf), 3, stride=2)
        for i in range(1, len(self.stage_channels) + 1):
            x = getattr(self, f"layer{i}")(x)
        return x


class EvalBatchNorm2d(nn.Module):
    """BatchNorm2d that always normalises with its stored statistics (eval-mode arithmetic):

        y = (x - running_mean) / sqrt(running_var + eps) * weight + bias     per channel

    The statistics never update, in train() mode too: a pretrained backbone keeps the ImageNet
    statistics it was trained with, and RL batches (replay samples, a batch of 1 when acting)
    would otherwise drift them and make acting and learning disagree. weight and bias are
    parameters (they train when the backbone is not frozen); running_mean and running_var are
    buffers. state_dict keys: weight, bias, running_mean, running_var, each (C,) float32 (no
    num_batches_tracked: it only matters to batch statistics, which this never computes).
    forward: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, channels: int, eps: float = BATCH_NORM_EPS):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class ResNet18Block(nn.Module):
    """torchvision's ResNet BasicBlock: conv3x3(stride) -> BN -> ReLU -> conv3x3 -> BN,
    + downsample, ReLU.

    Padding 1 on every side (PyTorch's symmetric padding, as torchvision); the downsample branch,
    conv1x1(stride) -> BN, exists when the shape changes. Attribute names are torchvision's
    (conv1, bn1, conv2, bn2, downsample.0, downsample.1), so its state_dict keys carry over.
    forward: (B, in_ch, H, W) -> (B, out_ch, ceil(H/stride), ceil(W/stride)).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = EvalBatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.bn2 = EvalBatchNorm2d(out_ch)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), EvalBatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class ResNet18(nn.Module):
    """torchvision's ResNet-18 without its classifier (avgpool, fc), written here (torchvision is
    not a dependency), with batch norms that always run in eval mode (EvalBatchNorm2d).

    conv7x7/2 (64, padding 3) -> BN -> ReLU -> maxpool3x3/2 (padding 1) -> 4 stages of 2
    ResNet18Blocks with 64, 128, 256, 512 channels (first block's stride 1, 2, 2, 2). 11.2M
    parameters. The input is normalised with the ImageNet statistics first (torchvision's
    ResNet18_Weights.IMAGENET1K_V1 preprocessing; constants, not in the state_dict).
    forward: (B, 3, H, W) float32 in [0, 1] -> (B, 512, ceil(H/32), ceil(W/32)) (4x4 at 128).

    Layout from torchvision/models/resnet.py (ResNet(BasicBlock, [2, 2, 2, 2])). state_dict keys
    (= torchvision's, less fc.* and *.num_batches_tracked; all float32):
        conv1.weight (64, 3, 7, 7); bn1.{weight,bias,running_mean,running_var} (64,);
        layer{1..4}.{0,1}.conv1.weight, .conv2.weight (out, in, 3, 3);
        layer{1..4}.{0,1}.bn1.*, .bn2.* (out,);
        layer{2,3,4}.0.downsample.0.weight (out, in, 1, 1), layer{i}.0.downsample.1.* (out,).
    """

    stage_channels = (64, 128, 256, 512)
    blocks_per_stage = 2
    channels = 512

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = EvalBatchNorm2d(64)
        width = 64
        for i, out_ch in enumerate(self.stage_channels, start=1):
            blocks = [
                ResNet18Block(width if j == 0 else out_ch, out_ch, stride=2 if i > 1 and j == 0 else 1)
                for j in range(self.blocks_per_stage)
            ]
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
            width = out_ch
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def output_shape(self, image_size: int) -> tuple[int, int, int]:
        """(C, h, w) of the feature map for a square image of `image_size` pixels."""
        side = resnet_output_side(image_size)
        return self.channels, side, side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, stride=2, padding=1)
        for i in range(1, len(self.stage_channels) + 1):
            x = getattr(self, f"layer{i}")(x)
        return x


# Kinds meant to run with pretrained weights, and the `hilrl convert-encoder --from` source that
# makes them (README: "Pretrained encoders").
PRETRAINED_KINDS: dict[str, str] = {"resnet10": "hilserl-resnet10", "resnet18": "torchvision-resnet18"}

# Backbone class of each EncoderConfig.kind.
BACKBONES: dict[str, type[nn.Module]] = {
    "small": SmallConvBackbone,
    "resnet10": ResNet10,
    "resnet18": ResNet18,
}


# --------------------------------------------------------------------------------------------
# Head: (B, C, h, w) -> (B, feature_dim)
# --------------------------------------------------------------------------------------------


class SpatialLearnedEmbeddings(nn.Module):
    """K learned spatial kernels per channel: out[b, c, k] = sum_{y,x} f[b, c, y, x] * W[c, y, x, k].

    Unlike average pooling it keeps where things are (each kernel weights positions), which
    manipulation needs. Parameter: kernel (C, h, w, K), normal with std 1/sqrt(h*w) (the fan-in
    of each output).
    forward: (B, C, h, w) -> (B, C*K), ordered channel-major (c * K + k).
    """

    def __init__(self, channels: int, height: int, width: int, num_features: int):
        super().__init__()
        self.kernel = nn.Parameter(
            torch.randn(channels, height, width, num_features) / math.sqrt(height * width)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.shape[1:] != self.kernel.shape[:3]:
            raise ValueError(
                f"feature map {tuple(features.shape[1:])} does not match the spatial kernels "
                f"{tuple(self.kernel.shape[:3])}"
            )
        return torch.einsum("bchw,chwk->bck", features, self.kernel).flatten(1)


class EmbeddingHead(nn.Module):
    """SpatialLearnedEmbeddings -> Linear -> LayerNorm -> tanh (no dropout).

    forward: (B, C, h, w) -> (B, feature_dim) in (-1, 1).
    """

    def __init__(self, feature_shape: tuple[int, int, int], num_spatial: int, feature_dim: int):
        super().__init__()
        channels, height, width = feature_shape
        self.spatial = SpatialLearnedEmbeddings(channels, height, width, num_spatial)
        self.linear = nn.Linear(channels * num_spatial, feature_dim)
        self.norm = nn.LayerNorm(feature_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.norm(self.linear(self.spatial(features))))


# --------------------------------------------------------------------------------------------
# One camera
# --------------------------------------------------------------------------------------------


class ImageEncoder(nn.Module):
    """One camera's encoder: backbone + head. Use make_encoder (or SmallConvEncoder, ResNet10Encoder,
    ResNet18Encoder).

    With `config.is_frozen` the backbone has requires_grad False, stays in eval mode whatever
    train() is called with, and runs under torch.no_grad; the head always trains.
    forward: images (B, H, W, 3) uint8 or (B, 3, H, W) float in [0, 1] -> (B, feature_dim).
    """

    def __init__(self, backbone: nn.Module, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.image_size = config.image_size
        self.backbone = backbone
        self.feature_shape: tuple[int, int, int] = backbone.output_shape(config.image_size)
        self.head = EmbeddingHead(self.feature_shape, config.num_spatial_embeddings, config.feature_dim)
        # NHWC convolutions: oneDNN runs ResNet-10 about 20% faster on a CPU (two 128x128
        # cameras, 1 thread: 15.5 -> 12.5 ms), and camera images arrive H x W x 3, so a uint8
        # batch is already in this layout once permuted (no copy). Values and state_dict keys
        # are unchanged; Module.to(device) keeps the format.
        self.backbone.to(memory_format=torch.channels_last)
        self.frozen = config.is_frozen
        if self.frozen:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    def train(self, mode: bool = True) -> ImageEncoder:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def backbone_features(self, images: torch.Tensor) -> torch.Tensor:
        """images as for forward -> feature map (B, C, h, w) float32 (no graph when frozen)."""
        x = to_float_chw(images, self.image_size).contiguous(memory_format=torch.channels_last)
        if self.frozen:
            with torch.no_grad():
                return self.backbone(x)
        return self.backbone(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone_features(images))


class SmallConvEncoder(ImageEncoder):
    """SmallConvBackbone + head: (B, H, W, 3) uint8 / (B, 3, H, W) float -> (B, feature_dim)."""

    def __init__(self, config: EncoderConfig):
        super().__init__(SmallConvBackbone(), config)


class ResNet10Encoder(ImageEncoder):
    """ResNet10 (ImageNet-normalised input) + head: the reference's frozen-ResNet encoder.

    (B, H, W, 3) uint8 / (B, 3, H, W) float -> (B, feature_dim).
    """

    def __init__(self, config: EncoderConfig):
        super().__init__(ResNet10(), config)


class ResNet18Encoder(ImageEncoder):
    """ResNet18 (torchvision's, ImageNet-normalised input, batch norms in eval mode) + head.

    (B, H, W, 3) uint8 / (B, 3, H, W) float -> (B, feature_dim).
    """

    def __init__(self, config: EncoderConfig):
        super().__init__(ResNet18(), config)


# Encoder class of each EncoderConfig.kind (its backbone: BACKBONES[kind]).
ENCODERS: dict[str, type[ImageEncoder]] = {
    "small": SmallConvEncoder,
    "resnet10": ResNet10Encoder,
    "resnet18": ResNet18Encoder,
}


def make_encoder(config: EncoderConfig, weights: Mapping[str, np.ndarray] | None = None) -> ImageEncoder:
    """One camera's encoder for `config`, its backbone filled from `weights` when given.

    `weights` are arrays from read_encoder_weights (config.weights_path is not read here, so that
    several cameras share one read). Parameters are created on the CPU in float32.
    """
    encoder = ENCODERS[config.kind](config)
    if weights is not None:
        load_state_arrays(encoder.backbone, weights, config.weights_path or "weights")
    return encoder


# --------------------------------------------------------------------------------------------
# Several cameras
# --------------------------------------------------------------------------------------------


class MultiCameraEncoder(nn.Module):
    """One ImageEncoder per camera (separate weights), features concatenated in `cameras` order.

    The backbone weights come from config.weights_path (checked against config.weights_sha256)
    when set; without it the backbones start random, with a warning for a ResNet or a frozen
    backbone. `read_weights=False` skips both the file and the warning, for a caller that loads
    every tensor itself (an actor's policy gets them from the learner).

    Attributes:
        cameras: camera names, the order of the output blocks.
        out_dim: n_cams * feature_dim.
        feature_shape: (n_cams, C, h, w) of encode_frozen's output (per sample).
        frozen: whether the backbones are frozen.
    forward: images {camera: (B, H, W, 3) uint8 or (B, 3, H, W) float in [0, 1]} (other keys
        ignored) -> (B, n_cams * feature_dim) float32.
    """

    def __init__(self, cameras: Sequence[str], config: EncoderConfig, read_weights: bool = True):
        super().__init__()
        cameras = list(cameras)
        if not cameras:
            raise ValueError("MultiCameraEncoder needs at least one camera")
        if len(set(cameras)) != len(cameras):
            raise ValueError(f"camera names repeat: {cameras}")
        for name in cameras:
            # Names become module keys (and state_dict prefixes): no dots, not empty.
            if not name or "." in name:
                raise ValueError(f"camera name {name!r} must be non-empty and contain no '.'")
        self.cameras: tuple[str, ...] = tuple(cameras)
        self.config = config
        self.frozen = config.is_frozen
        weights = None
        if not read_weights:
            pass  # the caller fills every tensor (e.g. an actor's policy, from the learner)
        elif config.weights_path is not None:
            assert config.weights_sha256 is not None  # EncoderConfig enforces the pair
            weights = read_encoder_weights(config.weights_path, config.weights_sha256)
        elif config.kind in PRETRAINED_KINDS or self.frozen:
            # The ResNets are meant to run with ImageNet weights, and a frozen random backbone
            # never learns: both are legal (tests, benchmarks) but rarely what a user wants.
            logger.warning(
                "%s encoder without weights_path: the backbone is randomly initialised%s",
                config.kind,
                " and frozen, so it will never learn useful features" if self.frozen else "",
            )
        self.encoders = nn.ModuleDict({name: make_encoder(config, weights) for name in cameras})
        first = self.encoders[cameras[0]]
        self.feature_shape: tuple[int, int, int, int] = (len(cameras), *first.feature_shape)
        self.out_dim = len(cameras) * config.feature_dim

    def _image(self, images: Mapping[str, torch.Tensor], name: str) -> torch.Tensor:
        try:
            return images[name]
        except KeyError:
            raise KeyError(f"no image for camera {name!r}; got {sorted(images)}") from None

    def encode_frozen(self, images: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Frozen backbone features of every camera: (B, n_cams, C, h, w) float32, no graph.

        Computed once per learner batch and shared by the actor, critics and grasp critic, each
        of which runs `embed` (the trainable heads) on it. Needs a frozen encoder: a trained
        backbone has to run inside each loss.
        """
        if not self.frozen:
            raise RuntimeError("encode_frozen needs a frozen encoder (EncoderConfig.frozen)")
        with torch.no_grad():
            maps = [
                self.encoders[name].backbone_features(self._image(images, name)) for name in self.cameras
            ]
        return torch.stack(maps, dim=1)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Heads on encode_frozen's output: (B, n_cams, C, h, w) -> (B, n_cams * feature_dim)."""
        if tuple(features.shape[1:]) != self.feature_shape:
            raise ValueError(f"features {tuple(features.shape)} do not match (B, {self.feature_shape})")
        return torch.cat(
            [self.encoders[name].head(features[:, i]) for i, name in enumerate(self.cameras)], dim=-1
        )

    def forward(self, images: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([self.encoders[name](self._image(images, name)) for name in self.cameras], dim=-1)


# --------------------------------------------------------------------------------------------
# Weight files (.npz, no pickle)
# --------------------------------------------------------------------------------------------


def sha256_bytes(data: bytes) -> str:
    """Lowercase hex SHA-256 of `data` (what sha256sum prints)."""
    return hashlib.sha256(data).hexdigest()


def read_pinned_file(
    path: str | os.PathLike, sha256: str, what: str, hint: str = "", error: type[ValueError] = ValueError
) -> bytes:
    """The bytes of `path` after checking their SHA-256 against `sha256` (hex, any case).

    Read once: the caller parses the very bytes that were checked. `what` names the file in the
    messages ("encoder weights file"); `hint` is appended to a mismatch message.
    Raises:
        FileNotFoundError: no file at `path`.
        `error` (a ValueError): the hash differs (names the file, expected and actual hash).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    data = path.read_bytes()
    expected = sha256.strip().lower()
    actual = sha256_bytes(data)
    if actual != expected:
        raise error(f"{what} {path}: SHA-256 mismatch: expected {expected}, actual {actual}{hint}")
    return data


def save_encoder_weights(module: nn.Module, path: str | os.PathLike) -> str:
    """Write module.state_dict() to `path` as an .npz archive and return its SHA-256 (hex).

    One uncompressed `<key>.npy` member per state_dict key, arrays in the tensors' dtypes,
    written without pickle. The bytes depend on the tensors only (every member is stamped
    1980-01-01 00:00, the zip epoch), so the same weights always give the same file and hash.
    The file appears atomically (temp file, fsync, rename), so a reader never sees half of one.
    For encoder configs save the backbone: `encoder.backbone`.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, tensor in module.state_dict().items():
            array = tensor.detach().to("cpu").contiguous().numpy()
            member_info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            member_info.external_attr = 0o644 << 16  # -rw-r--r-- for unzip; fixed, like the date
            with archive.open(member_info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
    data = buffer.getvalue()
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return sha256_bytes(data)


def read_encoder_weights(path: str | os.PathLike, sha256: str) -> dict[str, np.ndarray]:
    """Arrays of a weights .npz, after checking the file's SHA-256. Never unpickles.

    The file is read into memory once; the hash is checked on those bytes and the same bytes are
    parsed, so the file cannot change between check and load.
    Raises:
        FileNotFoundError: no file at `path` (the message names it).
        ValueError: hash mismatch (names the file, the expected and the actual hash), or the
            content is not an .npz of plain numeric arrays (e.g. a pickle, or object arrays).
    """
    path = Path(path).expanduser()
    data = read_pinned_file(path, sha256, "encoder weights file")
    not_npz = f"encoder weights file {path} is not an .npz archive of numeric arrays"
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        # numpy refuses anything that is neither .npy nor .npz (a pickle in particular) without
        # unpickling it when allow_pickle is False.
        raise ValueError(f"{not_npz} (pickled data is refused, never loaded): {exc}") from exc
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError(f"{not_npz}: it holds a single .npy array")
    arrays: dict[str, np.ndarray] = {}
    with loaded:
        for key in loaded.files:
            try:
                array = loaded[key]
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
                raise ValueError(f"{not_npz}: member {key!r}: {exc}") from exc
            if array.dtype.kind not in "fiub":
                raise ValueError(f"{not_npz}: member {key!r} has dtype {array.dtype}")
            arrays[key] = array
    return arrays


def load_state_arrays(module: nn.Module, arrays: Mapping[str, np.ndarray], source: str = "weights") -> None:
    """Copy `arrays` into module's state_dict tensors in place: same keys, same shapes, finite.

    Raises ValueError naming `source` and the offending keys; the module is left untouched then.
    """
    state = module.state_dict()
    missing = sorted(set(state) - set(arrays))
    unexpected = sorted(set(arrays) - set(state))
    if missing or unexpected:
        raise ValueError(
            f"{source}: keys do not match the module's state_dict: missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{' ...' if len(unexpected) > 5 else ''}"
        )
    for key, tensor in state.items():
        array = arrays[key]
        if tuple(array.shape) != tuple(tensor.shape):
            raise ValueError(f"{source}: {key} has shape {array.shape}, the module expects {tuple(tensor.shape)}")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ValueError(f"{source}: {key} contains NaN or inf")
    with torch.no_grad():
        for key, tensor in state.items():
            tensor.copy_(torch.from_numpy(np.array(arrays[key])))


def load_encoder_weights(module: nn.Module, path: str | os.PathLike, sha256: str) -> None:
    """read_encoder_weights(path, sha256), then load_state_arrays into `module`."""
    load_state_arrays(module, read_encoder_weights(path, sha256), str(path))


# --------------------------------------------------------------------------------------------
# DrQ augmentation
# --------------------------------------------------------------------------------------------


def _replicate_pad(x: torch.Tensor, dim: int, pad: int) -> torch.Tensor:
    """x with its first and last slice along `dim` repeated `pad` times on each side.

    torch.cat of expanded edge slices: memory copies only, so any dtype on any device (F.pad's
    replicate mode does not cover integer tensors everywhere).
    """
    edge = list(x.shape)
    edge[dim] = pad
    first = x.narrow(dim, 0, 1).expand(edge)
    last = x.narrow(dim, x.shape[dim] - 1, 1).expand(edge)
    return torch.cat([first, x, last], dim=dim)


def random_shift(
    images: torch.Tensor,
    pad: int = 4,
    generator: torch.Generator | None = None,
    channels_last: bool | None = None,
) -> torch.Tensor:
    """DrQ random shift: replicate-pad by `pad` pixels, then crop back to H x W at a random
    offset, independently per sample. Same shape, dtype and device as the input.

    images: (B, H, W, C) or (B, C, H, W), any dtype (uint8 stays uint8); the layout is inferred
    (see is_channels_last) unless `channels_last` is given. Each sample gets integer shifts
    dy, dx uniform in [-pad, pad]: out[b, y, x] = in[b, clamp(y + dy_b), clamp(x + dx_b)].
    Vectorised on the tensor's device, no loop over the batch and no host sync: the padded
    batch is viewed (as_strided, no copy) as every crop of every sample, (B, 2*pad+1, 2*pad+1,
    *image dims), and one advanced index picks each sample's crop. Differentiable for float
    inputs. `generator` may live on another device than the images (the shifts are drawn there
    and moved). pad 0 returns a copy of the input.
    """
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    last = is_channels_last(images, channels_last)
    if pad == 0:
        return images.clone()
    b = images.shape[0]
    row_dim, col_dim = (1, 2) if last else (2, 3)
    padded = _replicate_pad(_replicate_pad(images, row_dim, pad), col_dim, pad)
    strides = padded.stride()
    crops = padded.as_strided(
        (b, 2 * pad + 1, 2 * pad + 1, *images.shape[1:]),
        (strides[0], strides[row_dim], strides[col_dim], *strides[1:]),
        padded.storage_offset(),
    )
    draw_device = generator.device if generator is not None else images.device
    # Offsets of the crop inside the padded image, 0..2*pad: the shift is offset - pad.
    offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator, device=draw_device)
    offsets = offsets.to(images.device)
    return crops[torch.arange(b, device=images.device), offsets[:, 0], offsets[:, 1]]


def convert_command(kind: str, out: str | os.PathLike) -> str:
    """The `hilrl convert-encoder` command line that makes weights file `out` for encoder `kind`
    ("SOURCE" standing for the downloaded checkpoint), or "" for a kind without a public one."""
    source = PRETRAINED_KINDS.get(kind)
    return f"hilrl convert-encoder --from {source} SOURCE {out}" if source else ""


def check_weights_file(encoder: EncoderConfig, key: str = "learner.sac.encoder.weights_path") -> None:
    """The weights file `encoder` names exists and is what it says (its SHA-256), so a run stops
    before it starts anything. Nothing to check without a `weights_path`. Raises SchemaError
    naming `key`; for a missing file of a pretrained kind the message gives the convert command,
    for a hash mismatch it says where the right hash comes from."""
    if encoder.weights_path is None:
        return
    command = convert_command(encoder.kind, encoder.weights_path)
    try:
        read_encoder_weights(encoder.weights_path, encoder.weights_sha256 or "")
    except FileNotFoundError as exc:
        hint = (
            f"; make it once from the public checkpoint with `{command}` (README: Pretrained "
            f"encoders) and set weights_sha256 to the hash it prints"
            if command else "; write it with policies.encoders.save_encoder_weights"
        )
        raise SchemaError(key, f"{exc}{hint}") from None
    except ValueError as exc:
        hint = (
            " (weights_sha256 must be the hash `hilrl convert-encoder` printed for this file)"
            if command and "SHA-256 mismatch" in str(exc) else ""
        )
        raise SchemaError(key, f"{exc}{hint}") from None
