"""Stage runners. The registry maps a stage name to the `module:STAGE` that declares its trainer; modules are imported on use,
so that `ftkit --help` and `ftkit check` never import torch. Adding a stage is one line here plus its module.
"""

STAGES: dict[str, str] = {
    "pt": "ftkit.stages.pt:STAGE",
    "sft": "ftkit.stages.sft:STAGE",
    "dpo": "ftkit.stages.dpo:STAGE",
    "grpo": "ftkit.stages.grpo:STAGE",
}
