"""`ftkit env`: what this machine offers ftkit (versions, devices, optional features)."""

from __future__ import annotations

import importlib.util
import platform


def describe() -> str:
    import torch

    from ftkit.rundir import versions

    lines = [f"{name:<13} {version}" for name, version in versions().items()]
    lines.append(f"{'platform':<13} {platform.platform()}")
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            lines.append(f"{'cuda:' + str(index):<13} {props.name}, {props.total_memory / 2**30:.0f} GiB")
        lines.append(f"{'bf16':<13} {'yes' if torch.cuda.is_bf16_supported() else 'no'}")
    elif hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
        lines.append(f"{'device':<13} mps (Apple silicon)")
    else:
        lines.append(f"{'device':<13} cpu only ({torch.get_num_threads()} threads)")
    for feature, module in (("flash-attn", "flash_attn"), ("wandb", "wandb"), ("tensorboard", "tensorboard")):
        found = importlib.util.find_spec(module) is not None
        lines.append(f"{feature:<13} {'installed' if found else 'not installed'}")
    return "\n".join(lines)
