"""Streaming LoRA merge: walk the base model's safetensors tensor by tensor, add each LoRA (or DoRA)
update to the weight it belongs to, and write output shards as they fill up.

Peak memory is about one output shard plus the adapter, whatever the model's size: a 70B merge fits
on a machine with a few GB free. The math is peft's (merge_and_unload), applied to tensors read from
disk instead of to a loaded model:

    W' = W + s * (B @ A)                          LoRA, s = alpha / r (alpha / sqrt(r) with rsLoRA)
    W' = m / ||W + s * (B @ A)||_row * (W + s*B@A)   DoRA (m: the learned magnitude per output row;
                                                      per embedding dimension for an embedding)
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import resource
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ftkit.errors import UserError
from ftkit.sizes import parse_size

log = logging.getLogger(__name__)
ADAPTER_PREFIX = "base_model.model."


class CannotStream(Exception):
    """The base checkpoint cannot be merged tensor by tensor; the message says why."""


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def reset_peak_memory() -> None:
    """Start a new peak-memory measurement (Linux: clear the high-water mark; elsewhere a no-op)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def current_memory_mb() -> float:
    return _status_mb("VmRSS") or 0.0


def peak_memory_mb() -> float:
    """Peak resident memory of this process (since the last reset_peak_memory on Linux)."""
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024


@dataclass
class LoraModule:
    """One adapted module: its low-rank factors and scaling, and DoRA's magnitude when present."""

    a: torch.Tensor | None = None
    b: torch.Tensor | None = None
    magnitude: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    embedding: bool = False
    """LoRA on an embedding: lora_embedding_A (r, vocab) and lora_embedding_B (dim, r)."""
    scaling: float = 1.0


@dataclass
class Adapter:
    modules: dict[str, LoraModule] = field(default_factory=dict)
    """Adapted module path (e.g. model.layers.0.self_attn.q_proj) -> its factors."""
    replacements: dict[str, torch.Tensor] = field(default_factory=dict)
    """Whole tensors the adapter carries (modules_to_save, resized embeddings), by base tensor name."""
    fan_in_fan_out: bool = False


def _pattern_value(module: str, patterns: dict[str, Any], default: Any) -> Any:
    """peft's rank_pattern / alpha_pattern: the value of the first pattern that matches the module path."""
    for pattern, value in patterns.items():
        if re.match(rf"(.*\.)?({pattern})$", module):
            return value
    return default


def readable_safetensors(path: Path, what: str) -> None:
    """A safetensors file whose header and size agree; a truncated or damaged file is a user error."""
    try:
        with safe_open(str(path), framework="pt"):
            pass
    except Exception as exc:  # safetensors raises its own SafetensorError (and OSError for I/O)
        raise UserError(
            f"{what} {path} cannot be read ({exc}): the file is truncated or damaged. Save it again (for an "
            "adapter: resume or rerun its training), or point at an intact copy"
        ) from None


def adapter_weights(directory: Path) -> Path:
    """The adapter's safetensors file, checked to be there and intact."""
    weights = directory / "adapter_model.safetensors"
    if not weights.is_file():
        raise UserError(f"{directory} has no adapter_model.safetensors (ftkit merges safetensors adapters)")
    readable_safetensors(weights, "adapter weights")
    return weights


def read_adapter(directory: Path) -> Adapter:
    try:
        config = json.loads((directory / "adapter_config.json").read_text())
        config["r"], config["lora_alpha"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UserError(f"{directory / 'adapter_config.json'} is not a LoRA adapter config ({exc})") from None
    if config.get("peft_type", "LORA") != "LORA":
        raise UserError(
            f"{directory} holds a {config['peft_type']} adapter; ftkit merges LoRA (and DoRA) adapters"
        )
    weights = adapter_weights(directory)
    adapter = Adapter(fan_in_fan_out=bool(config.get("fan_in_fan_out")))
    for key, tensor in load_file(str(weights)).items():
        name = key.removeprefix(ADAPTER_PREFIX)
        match = re.fullmatch(
            r"(.+)\.(lora_A|lora_B|lora_embedding_A|lora_embedding_B)\.(weight|bias)|"
            r"(.+)\.lora_embedding_(A|B)|(.+)\.lora_magnitude_vector(?:\.weight)?",
            name,
        )
        if match is None:
            # modules_to_save and saved (possibly resized) embedding layers. peft may save a wrapped
            # layer's parts too: its trained copy (.modules_to_save.), the untouched original
            # (.original_module., skipped), an adapted layer's own weight (.base_layer., LoRA merges on top).
            if ".original_module." not in name:
                adapter.replacements[name.replace(".modules_to_save.", ".").replace(".base_layer.", ".")] = (
                    tensor
                )
            continue
        module = match.group(1) or match.group(4) or match.group(6)
        entry = adapter.modules.setdefault(module, LoraModule())
        kind = match.group(2) or (f"lora_embedding_{match.group(5)}" if match.group(5) else "magnitude")
        if kind == "magnitude":
            entry.magnitude = tensor
        elif kind.endswith("A"):
            entry.a, entry.embedding = tensor, kind.startswith("lora_embedding")
        elif match.group(3) == "bias":
            entry.bias = tensor
        else:
            entry.b = tensor
    for module, entry in adapter.modules.items():
        if entry.a is None or entry.b is None:
            raise UserError(
                f"adapter module {module} lacks its lora_A or lora_B weights; the adapter is incomplete"
            )
        r = _pattern_value(module, config.get("rank_pattern") or {}, config["r"])
        alpha = _pattern_value(module, config.get("alpha_pattern") or {}, config["lora_alpha"])
        entry.scaling = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
    return adapter


def merged_weight(weight: torch.Tensor, lora: LoraModule, fan_in_fan_out: bool) -> torch.Tensor:
    """The base weight with the module's update merged in, computed in float32, in the weight's dtype."""
    if not weight.is_floating_point():
        raise UserError(
            f"a LoRA target weight is stored as {weight.dtype}: the base checkpoint is quantized; "
            "merge into the full-precision model (--base)"
        )
    original = weight.to(torch.float32)
    if lora.embedding:  # (vocab, dim); DoRA's magnitude is per embedding dimension, normed over the vocab
        merged = original + (lora.b.float() @ lora.a.float()).T * lora.scaling
        if lora.magnitude is not None:
            merged = (lora.magnitude.float() / torch.linalg.norm(merged, dim=0)).view(1, -1) * merged
        return merged.to(weight.dtype)
    as_out_in = original.T if fan_in_fan_out else original  # peft's Linear layout is (out, in)
    merged = as_out_in + (lora.b.float() @ lora.a.float()) * lora.scaling
    if lora.magnitude is not None:
        merged = (lora.magnitude.float() / torch.linalg.norm(merged, dim=1)).view(-1, 1) * merged
    return (merged.T if fan_in_fan_out else merged).contiguous().to(weight.dtype)


def base_shards(directory: Path) -> list[Path]:
    """The base checkpoint's safetensors files, in index order; CannotStream when there are none."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        names = dict.fromkeys(json.loads(index.read_text())["weight_map"].values())
        return [directory / name for name in names]
    single = directory / "model.safetensors"
    if single.is_file():
        return [single]
    if any(directory.glob("*.bin")) or any(directory.glob("*.pt")):
        raise CannotStream("the base model is stored as pickle (.bin) files, not safetensors")
    raise CannotStream(f"no safetensors weights in {directory}")


_SAFETENSORS_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
_DTYPE_BY_CODE = {code: dtype for dtype, code in _SAFETENSORS_DTYPES.items()}


@dataclass(frozen=True)
class _Slot:
    """Where one output tensor goes: its shard, its shape and dtype, and its byte range in the shard."""

    name: str
    source: Path
    shape: tuple[int, ...]
    dtype: torch.dtype
    shard: int
    begin: int
    end: int


def _plan(
    shards: list[Path], replacements: dict[str, torch.Tensor], dtype: torch.dtype | None, limit: int
) -> list[_Slot]:
    """Lay the output tensors out in shards of at most `limit` bytes (a larger tensor gets its own), in
    the base's order, from the checkpoint headers alone: nothing is read yet."""
    slots, shard, offset = [], 0, 0
    for path in shards:
        readable_safetensors(path, "base model weights")
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 (safe_open handles are not dicts)
                view = handle.get_slice(name)
                code = view.get_dtype()
                if code not in _DTYPE_BY_CODE:
                    raise CannotStream(
                        f"tensor {name} has dtype {code}, which the streaming writer does not handle"
                    )
                out_dtype = _DTYPE_BY_CODE[code]
                shape = tuple(view.get_shape())
                if name in replacements:
                    shape = tuple(replacements[name].shape)
                if dtype is not None and out_dtype.is_floating_point:
                    out_dtype = dtype
                size = math.prod(shape) * torch.empty((), dtype=out_dtype).element_size()
                if offset and offset + size > limit:
                    shard, offset = shard + 1, 0
                slots.append(_Slot(name, path, shape, out_dtype, shard, offset, offset + size))
                offset += size
    return slots


def _header(slots: list[_Slot]) -> bytes:
    header = {
        s.name: {
            "dtype": _SAFETENSORS_DTYPES[s.dtype],
            "shape": list(s.shape),
            "data_offsets": [s.begin, s.end],
        }
        for s in slots
    }
    header["__metadata__"] = {"format": "pt"}
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # the data starts 8-byte aligned
    return len(encoded).to_bytes(8, "little") + encoded


def _shard_names(count: int) -> list[str]:
    if count == 1:
        return ["model.safetensors"]
    return [f"model-{number + 1:05d}-of-{count:05d}.safetensors" for number in range(count)]


@dataclass
class MergeReport:
    tensors: int = 0
    merged_modules: int = 0
    replaced_tensors: int = 0
    input_shards: int = 0
    output_shards: int = 0
    total_bytes: int = 0
    peak_memory_mb: float = 0.0
    vocab_size: int | None = None
    """Rows of the embedding when the adapter carries a resized one."""


def stream_merge(
    base_dir: Path, adapter_dir: Path, out_dir: Path, shard_size: str, dtype: torch.dtype | None = None
) -> MergeReport:
    """Merge the adapter into the base checkpoint, tensor by tensor, writing safetensors shards to out_dir.

    The output layout is planned from the checkpoint headers first, so each shard's header is written
    before its tensors and every merged tensor goes to disk as soon as it is computed: memory holds one
    tensor (and its float32 merge) at a time, not a shard.
    """
    from tqdm.auto import tqdm

    shards = base_shards(base_dir)
    adapter = read_adapter(adapter_dir)
    slots = _plan(shards, adapter.replacements, dtype, parse_size(shard_size))
    names = {slot.name for slot in slots}
    _drop_tied_copies(adapter, names)
    expected = {f"{module}.weight" for module in adapter.modules} | set(adapter.replacements)
    missing = sorted(expected - names)
    if missing:
        raise CannotStream(
            f"the checkpoint's tensor names do not match the adapter's modules (e.g. {missing[0]}); "
            "the model renames its weights when loading"
        )
    count = slots[-1].shard + 1 if slots else 0
    files = _shard_names(count)
    report = MergeReport(input_shards=len(shards), output_shards=count)
    reset_peak_memory()
    handles: dict[Path, Any] = {}
    output = None
    try:
        for slot in tqdm(slots, desc="Merging", unit="tensor"):
            if slot.begin == 0:  # a new output shard: its header first
                if output is not None:
                    output.close()
                output = (out_dir / files[slot.shard]).open("wb")
                output.write(_header([s for s in slots if s.shard == slot.shard]))
            if slot.source not in handles:
                for stale in handles.values():
                    stale.__exit__(None, None, None)
                handles = {slot.source: safe_open(str(slot.source), framework="pt").__enter__()}
            tensor = _merged(slot.name, handles[slot.source].get_tensor(slot.name), adapter, report)
            tensor = tensor.to(slot.dtype).contiguous()
            if tuple(tensor.shape) != slot.shape:
                raise UserError(f"merged {slot.name} has shape {tuple(tensor.shape)}, expected {slot.shape}")
            output.write(
                tensor.view(torch.uint8).numpy().tobytes()
                if tensor.dtype == torch.bool
                else tensor.reshape(-1).view(torch.uint8).numpy()
            )
            report.tensors += 1
            report.total_bytes += slot.end - slot.begin
    finally:
        if output is not None:
            output.close()
        for handle in handles.values():
            handle.__exit__(None, None, None)
    if count > 1:
        index = {
            "metadata": {"total_size": report.total_bytes},
            "weight_map": {slot.name: files[slot.shard] for slot in slots},
        }
        (out_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    report.peak_memory_mb = peak_memory_mb()
    return report


def _drop_tied_copies(adapter: Adapter, names: set[str]) -> None:
    """A model with tied embeddings stores one matrix; peft saves it under both names (embedding and LM
    head). The copy the checkpoint has no slot for is the same tensor: drop it."""
    stored = [tensor for name, tensor in adapter.replacements.items() if name in names]
    for name, tensor in list(adapter.replacements.items()):
        if name not in names and any(
            other.shape == tensor.shape and torch.equal(other, tensor) for other in stored
        ):
            del adapter.replacements[name]


def _merged(name: str, tensor: torch.Tensor, adapter: Adapter, report: MergeReport) -> torch.Tensor:
    """The tensor as the merged model has it: replaced, LoRA-merged, bias-merged, or unchanged."""
    module = name.removesuffix(".weight").removesuffix(".bias")
    if name in adapter.replacements:
        report.replaced_tensors += 1
        replacement = adapter.replacements[name]
        if replacement.dim() == 2 and replacement.shape[0] != tensor.shape[0]:
            report.vocab_size = replacement.shape[0]  # a resized embedding or LM head: new tokens
        tensor = replacement
    lora = adapter.modules.get(module)
    if lora is None:
        return tensor
    if name.endswith(".weight"):
        report.merged_modules += 1
        try:
            return merged_weight(tensor, lora, adapter.fan_in_fan_out)
        except RuntimeError:  # shapes that do not multiply: another model's adapter
            raise UserError(
                f"the adapter does not fit the base model at {name} (weight {tuple(tensor.shape)}, "
                f"lora_A {tuple(lora.a.shape)}, lora_B {tuple(lora.b.shape)}): was it trained on another base?"
            ) from None
    if name.endswith(".bias") and lora.bias is not None:
        return (tensor.float() + lora.bias.float() * lora.scaling).to(tensor.dtype)
    return tensor
