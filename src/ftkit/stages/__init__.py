"""Stage runners. The registry maps a stage name to `module:function`; modules are imported on use,
so that `ftkit --help` and `ftkit check` never import torch. Adding a stage is one line here plus its module.
"""

STAGES: dict[str, str] = {
    "pt": "ftkit.stages.pt:run",
    "sft": "ftkit.stages.sft:run",
    "dpo": "ftkit.stages.dpo:run",
    "grpo": "ftkit.stages.grpo:run",
}
