"""`hilrl convert-encoder --from FORMAT SOURCE OUT.npz`: a public pretrained checkpoint -> the
project's hash-pinned backbone weights (.npz), and the config lines that use it.

FORMAT (the checkpoint's layout)  encoder kind  where the checkpoint comes from (README: Pretrained encoders)
hilserl-resnet10                  resnet10      huggingface.co/helper2424/resnet10, model.safetensors: the
                                                PyTorch port of HIL-SERL's ResNet-10 that LeRobot's HIL-SERL
                                                loads (SACConfig.vision_encoder_name)
torchvision-resnet18              resnet18      download.pytorch.org/models/resnet18-f37072fd.pth:
                                                torchvision's ResNet18_Weights.IMAGENET1K_V1

Nothing is ever unpickled. A safetensors file (recognised by its content, whatever its name) is
read with the `safetensors` package; anything else is read with
`torch.load(..., map_location="cpu", weights_only=True)`, which accepts tensors and plain
containers only and refuses any other pickled object without constructing it.

The source's keys are mapped onto the backbone's state_dict names (the mappings below cite the
layouts they follow); a missing, unexpected, misshapen, non-float or non-finite tensor is refused
with an error naming the source key (exit 2). The .npz is written with save_encoder_weights (the
same weights always give the same bytes, hence the same hash), and the YAML for
`learner.sac.encoder` is printed with its SHA-256.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The first bytes of a safetensors file: an 8-byte little-endian header length, then the JSON
# header, which starts with "{" (github.com/huggingface/safetensors, "Format").
_SAFETENSORS_HEADER_START = 8


class ConversionError(ValueError):
    """A checkpoint that cannot be converted; the message says why, naming the file and keys."""


# --------------------------------------------------------------------------------------------
# Reading checkpoints (never unpickling)
# --------------------------------------------------------------------------------------------


def is_safetensors(path: Path) -> bool:
    """Whether `path` holds a safetensors file: an 8-byte little-endian header size N, then N
    bytes of JSON starting with "{", within the file."""
    with path.open("rb") as f:
        head = f.read(_SAFETENSORS_HEADER_START + 1)
        size = path.stat().st_size
    if len(head) < _SAFETENSORS_HEADER_START + 1:
        return False
    header_len = int.from_bytes(head[:_SAFETENSORS_HEADER_START], "little")
    return head[_SAFETENSORS_HEADER_START:] == b"{" and header_len <= size - _SAFETENSORS_HEADER_START


def _to_array(name: str, tensor: object, path: Path) -> np.ndarray:
    import torch

    if not isinstance(tensor, torch.Tensor):
        raise ConversionError(f"{path}: {name!r} is a {type(tensor).__name__}, not a tensor")
    tensor = tensor.detach().to("cpu")
    if tensor.is_floating_point() and tensor.dtype != torch.float32:
        tensor = tensor.to(torch.float32)  # float16 / bfloat16 / float64 checkpoints
    return tensor.contiguous().numpy()


def read_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a checkpoint by key, as numpy arrays (floats as float32).

    safetensors: read with safetensors.safe_open (no pickle in the format). Otherwise a PyTorch
    checkpoint (.pth/.pt, zip or legacy format) read with torch.load(weights_only=True): only
    tensors and plain containers load; a pickled object of any other type is refused without
    being built. The file must hold one flat {str: tensor} mapping (a state_dict).
    Raises:
        ConversionError: no such file, unreadable, refused by weights_only, or not a state_dict.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConversionError(f"checkpoint not found: {path}")
    if is_safetensors(path):
        try:
            from safetensors import safe_open
        except ImportError:
            raise ConversionError(
                f"{path} is a safetensors file: install the `safetensors` package (pip install safetensors)"
            ) from None
        try:
            with safe_open(str(path), framework="pt") as f:
                return {key: _to_array(key, f.get_tensor(key), path) for key in f.keys()}
        except ConversionError:
            raise
        except Exception as exc:  # the Rust reader raises its own error types
            raise ConversionError(f"{path}: not a readable safetensors file: {exc}") from None

    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises its unpickler's own error types
        # weights_only refuses every global outside its allow-list before constructing it (the
        # error is the unpickler's UnpicklingError, told apart here by name: nothing else of the
        # pickle module is needed).
        if type(exc).__name__ == "UnpicklingError":
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ConversionError(
                f"{path}: refused: it holds pickled objects other than tensors (torch.load "
                f"weights_only=True; nothing was unpickled): {first_line}"
            ) from None
        raise ConversionError(f"{path}: not a PyTorch checkpoint or a safetensors file: {exc}") from None
    if not isinstance(loaded, Mapping) or not all(isinstance(k, str) for k in loaded):
        raise ConversionError(
            f"{path}: expected a state_dict (a mapping of names to tensors), got {type(loaded).__name__}"
        )
    return {key: _to_array(key, value, path) for key, value in loaded.items()}


# --------------------------------------------------------------------------------------------
# Key mappings: source key -> backbone state_dict key
# --------------------------------------------------------------------------------------------

# HIL-SERL ResNet-10, PyTorch port (github.com/helper2424/resnet10, resnet_10/modeling_resnet.py;
# the weights on huggingface.co/helper2424/resnet10 that LeRobot's SAC and reward classifier load
# with AutoModel.from_pretrained(..., trust_remote_code=True)):
#   ResNet10.embedder = Sequential(Conv2d 7x7/2 pad 3, MyGroupNorm(4), ReLU, MaxPool2dJax)
#   ResNet10.encoder.stages[i] = BasicBlock(conv1: Conv2dJax (.conv), norm1: MyGroupNorm
#       (.group_norm), conv2, norm2, shortcut = Sequential(Conv2dJax 1x1, MyGroupNorm) when the
#       channels change: stages 1-3)
# Our ResNet10 (policies/encoders.py) has the same modules under torchvision-like names. Until
# 2025-04-24 (commit 508d0d0, "Refactor GroupNorm implementation") the norms were plain
# nn.GroupNorm, without the `.group_norm.` level; both spellings are accepted.
_HILSERL_PATTERNS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"embedder\.0\.weight"), lambda m: "conv1.weight"),
    (re.compile(r"embedder\.1\.(?:group_norm\.)?(weight|bias)"), lambda m: f"norm1.{m[1]}"),
    (
        re.compile(r"encoder\.stages\.(\d+)\.(conv[12])\.conv\.weight"),
        lambda m: f"layer{int(m[1]) + 1}.{m[2]}.weight",
    ),
    (
        re.compile(r"encoder\.stages\.(\d+)\.(norm[12])\.(?:group_norm\.)?(weight|bias)"),
        lambda m: f"layer{int(m[1]) + 1}.{m[2]}.{m[3]}",
    ),
    (
        re.compile(r"encoder\.stages\.(\d+)\.shortcut\.0\.conv\.weight"),
        lambda m: f"layer{int(m[1]) + 1}.shortcut.0.weight",
    ),
    (
        re.compile(r"encoder\.stages\.(\d+)\.shortcut\.1\.(?:group_norm\.)?(weight|bias)"),
        lambda m: f"layer{int(m[1]) + 1}.shortcut.1.{m[2]}",
    ),
)
_HILSERL_LAYER = re.compile(r"layer(\d+)\.(.*)")


def hilserl_resnet10_key(source_key: str) -> str | None:
    """Our ResNet10 state_dict key for a key of the HIL-SERL port, or None when it has none."""
    for pattern, target in _HILSERL_PATTERNS:
        match = pattern.fullmatch(source_key)
        if match:
            return target(match)
    return None


def hilserl_resnet10_source_key(target_key: str) -> str:
    """The port's key (current layout, with `.group_norm.`) for one of our ResNet10 keys."""
    if target_key == "conv1.weight":
        return "embedder.0.weight"
    if target_key.startswith("norm1."):
        return f"embedder.1.group_norm.{target_key.split('.')[-1]}"
    match = _HILSERL_LAYER.fullmatch(target_key)
    if not match:
        return target_key
    stage, rest = int(match[1]) - 1, match[2]
    rest = re.sub(r"^(conv[12])\.weight$", r"\1.conv.weight", rest)
    rest = re.sub(r"^(norm[12])\.(weight|bias)$", r"\1.group_norm.\2", rest)
    rest = re.sub(r"^shortcut\.0\.weight$", "shortcut.0.conv.weight", rest)
    rest = re.sub(r"^shortcut\.1\.(weight|bias)$", r"shortcut.1.group_norm.\1", rest)
    return f"encoder.stages.{stage}.{rest}"


# torchvision ResNet-18 (github.com/pytorch/vision, torchvision/models/resnet.py: ResNet(BasicBlock,
# [2, 2, 2, 2]); state_dict of resnet18-f37072fd.pth): conv1, bn1, layer{1..4}.{0,1}.{conv1,bn1,
# conv2,bn2}, layer{2,3,4}.0.downsample.{0,1}, fc. Our ResNet18 keeps these names, so the mapping
# is the identity; left out: the classifier (fc.weight, fc.bias: the backbone ends before the
# pooling) and every BatchNorm's num_batches_tracked (a training counter: our batch norms always
# use the stored statistics).
_TORCHVISION_DROPPED = re.compile(r"fc\.(weight|bias)|(.+\.)?num_batches_tracked")


def torchvision_resnet18_key(source_key: str) -> str | None:
    """Our ResNet18 state_dict key for a key of torchvision's resnet18, "" for a key that is
    left out on purpose (fc, num_batches_tracked)."""
    return "" if _TORCHVISION_DROPPED.fullmatch(source_key) else source_key


@dataclass(frozen=True)
class SourceFormat:
    """One checkpoint layout `--from` accepts.

    Attributes:
        kind: the EncoderConfig.kind whose backbone the weights fill.
        target_key: source key -> our state_dict key; "" to drop it on purpose, None for a key
            that does not belong to the layout (refused as unexpected).
        source_key: our state_dict key -> the source key that fills it (for messages).
        description: what the checkpoint is, for --help and messages.
    """

    kind: str
    target_key: Callable[[str], str | None]
    source_key: Callable[[str], str]
    description: str


FORMATS: dict[str, SourceFormat] = {
    "hilserl-resnet10": SourceFormat(
        "resnet10", hilserl_resnet10_key, hilserl_resnet10_source_key,
        "HIL-SERL's ResNet-10 as ported to PyTorch for LeRobot (huggingface.co/helper2424/resnet10, model.safetensors)",
    ),
    "torchvision-resnet18": SourceFormat(
        "resnet18", torchvision_resnet18_key, lambda key: key,
        "torchvision's ResNet-18 ImageNet weights (download.pytorch.org/models/resnet18-f37072fd.pth)",
    ),
}


def _listing(keys: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" ... ({len(keys)} in all)" if len(keys) > limit else "")


def map_checkpoint(
    source: Mapping[str, np.ndarray], fmt: str, expected: Mapping[str, tuple[int, ...]], where: str = "checkpoint"
) -> dict[str, np.ndarray]:
    """The arrays of `source` (a `fmt` checkpoint) under our backbone's state_dict keys.

    `expected`: our state_dict key -> shape. Every expected key must be filled exactly once,
    with a finite floating-point array of that shape; every source key must map to one (or be
    dropped on purpose). Returns float32 arrays.
    Raises:
        ConversionError: naming the source keys that are missing, unexpected, duplicated,
            misshapen, not floating point or not finite (and `where`, the file).
    """
    spec = FORMATS[fmt]
    mapped: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    unexpected: list[str] = []
    duplicated: list[str] = []
    for key in sorted(source):
        target = spec.target_key(key)
        if target == "":
            continue
        if target is None or target not in expected:
            unexpected.append(key)
        elif target in mapped:
            duplicated.append(f"{origin[target]} and {key} (both -> {target})")
        else:
            mapped[target] = source[key]
            origin[target] = key
    missing = [spec.source_key(t) for t in expected if t not in mapped]
    if missing or unexpected or duplicated:
        parts = []
        if missing:
            parts.append(f"missing {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected {_listing(unexpected)}")
        if duplicated:
            parts.append(f"given twice {_listing(duplicated)}")
        hint = _other_format_hint(source, fmt)
        raise ConversionError(
            f"{where}: the keys are not those of a {fmt} checkpoint ({spec.description}): "
            f"{'; '.join(parts)}{hint}"
        )
    out: dict[str, np.ndarray] = {}
    for target, shape in expected.items():
        array, key = mapped[target], origin[target]
        if tuple(array.shape) != tuple(shape):
            raise ConversionError(
                f"{where}: {key} has shape {tuple(array.shape)}, {fmt} needs {tuple(shape)} (for {target})"
            )
        if array.dtype.kind != "f":
            raise ConversionError(f"{where}: {key} has dtype {array.dtype}, expected floating point")
        if not np.isfinite(array).all():
            raise ConversionError(f"{where}: {key} contains NaN or inf")
        out[target] = np.ascontiguousarray(array, dtype=np.float32)
    return out


@functools.cache
def backbone_shapes(kind: str) -> dict[str, tuple[int, ...]]:
    """Our `kind` backbone's state_dict: key -> shape."""
    from hilrl.policies.encoders import BACKBONES

    return {key: tuple(t.shape) for key, t in BACKBONES[kind]().state_dict().items()}


def _other_format_hint(source: Mapping[str, np.ndarray], fmt: str) -> str:
    """" (it looks like a X checkpoint: use --from X)" when another format's mapping fills at
    least 90% of its backbone from `source`, else ""."""
    for name, spec in FORMATS.items():
        if name == fmt:
            continue
        wanted = backbone_shapes(spec.kind)
        filled = {spec.target_key(key) for key in source} & set(wanted)
        if len(filled) >= 0.9 * len(wanted):
            return f" (it looks like a {name} checkpoint: use --from {name})"
    return ""


# --------------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Converted:
    """A written weights file.

    Attributes:
        kind: EncoderConfig.kind it is for.
        path: the .npz written.
        sha256: its SHA-256 (hex), the config's weights_sha256.
        parameters: number of values in it (parameters and normalisation statistics).
    """

    kind: str
    path: Path
    sha256: str
    parameters: int


def convert(fmt: str, source: str | Path, out: str | Path, overwrite: bool = False) -> Converted:
    """Read checkpoint `source` (layout `fmt`, a key of FORMATS), load it into a fresh backbone of
    the matching kind and write that backbone's weights to `out` with save_encoder_weights.

    Raises:
        ConversionError: unreadable or mismatching checkpoint, or `out` exists (without
            overwrite); nothing is written then.
    """
    from hilrl.policies.encoders import BACKBONES, load_state_arrays, save_encoder_weights

    spec = FORMATS[fmt]
    out = Path(out).expanduser()
    if out.suffix != ".npz":
        raise ConversionError(f"{out}: the output must be an .npz file")
    if out.exists() and not overwrite:
        raise ConversionError(f"{out} exists; refusing to overwrite it (pass --force)")
    source = Path(source).expanduser()
    arrays = read_checkpoint(source)
    mapped = map_checkpoint(arrays, fmt, backbone_shapes(spec.kind), str(source))
    backbone = BACKBONES[spec.kind]()
    load_state_arrays(backbone, mapped, str(source))
    out.parent.mkdir(parents=True, exist_ok=True)
    digest = save_encoder_weights(backbone, out)
    return Converted(spec.kind, out, digest, sum(a.size for a in mapped.values()))


def yaml_snippet(converted: Converted, weights_path: str) -> str:
    """The `learner.sac.encoder` lines that use the converted file (valid YAML on its own)."""
    return (
        "learner:\n"
        "  sac:\n"
        "    encoder:\n"
        f"      kind: {converted.kind}\n"
        f"      weights_path: {json.dumps(weights_path)}\n"
        f"      weights_sha256: {converted.sha256}\n"
        "      frozen: true\n"
    )


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Entry point of `hilrl convert-encoder`; returns the exit code (2 for bad input)."""
    formats = "\n".join(f"  {name:<22} -> kind {spec.kind}: {spec.description}" for name, spec in FORMATS.items())
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Convert a public pretrained checkpoint into the hash-pinned backbone weights (.npz) "
        "that learner.sac.encoder.weights_path takes, and print the config lines to paste. Never "
        "unpickles: safetensors directly, a .pth only through torch.load(weights_only=True).",
        epilog=f"formats:\n{formats}\n\nWhere to download each checkpoint: README, \"Pretrained encoders\".",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--from", dest="fmt", required=True, choices=sorted(FORMATS), help="the checkpoint's layout")
    parser.add_argument("source", metavar="SOURCE", help="the downloaded checkpoint (.safetensors or .pth)")
    parser.add_argument("out", metavar="OUT.npz", help="the weights file to write (its folder is created)")
    parser.add_argument("--force", action="store_true", help="overwrite OUT.npz if it exists")
    args = parser.parse_args(argv)
    name = parser.prog
    try:
        converted = convert(args.fmt, args.source, args.out, overwrite=args.force)
    except (ConversionError, OSError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    print(f"# {args.fmt} {args.source} -> {converted.path} ({converted.parameters:,} values)")
    print(f"# SHA-256 {converted.sha256}")
    print("# Paste into the task config (the learner machine needs the file at weights_path,")
    print("# relative to the folder the learner runs in):")
    print(yaml_snippet(converted, args.out), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
