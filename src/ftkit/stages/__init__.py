"""Stage runners. The registry maps a stage name to `module:function`; modules are imported on use,
so that `ftkit --help` and `ftkit check` never import torch. Adding a stage is one line here plus its module.
"""

STAGES: dict[str, str] = {
    "sft": "ftkit.stages.sft:run",
}
