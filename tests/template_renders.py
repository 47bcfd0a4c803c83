"""Reference renders of two conversations by each family's published chat template (facts about the
formats, written out here so the tests do not depend on any file outside the repository)."""

CONVERSATIONS = {
    "full": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello! What is 2 + 2?"},
        {"role": "assistant", "content": "2 + 2 = 4."},
        {"role": "user", "content": "And times 3?"},
        {"role": "assistant", "content": "(2 + 2) * 3 = 12."},
    ],
    "short": [
        {"role": "user", "content": "Hello! What is 2 + 2?"},
        {"role": "assistant", "content": "2 + 2 = 4."},
    ],
}


class RaisesError(str):
    """The publisher's template raises this error for the conversation."""


# family -> {"<conversation>|add_generation_prompt=<bool>": rendered text, or the error it raises}
RENDERS = {
    "chatml": {
        "full|add_generation_prompt=false": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello! What is 2 + 2?<|im_end|>\n<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n<|im_start|>user\nAnd times 3?<|im_end|>\n<|im_start|>assistant\n(2 + 2) * 3 = 12.<|im_end|>\n",
        "full|add_generation_prompt=true": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello! What is 2 + 2?<|im_end|>\n<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n<|im_start|>user\nAnd times 3?<|im_end|>\n<|im_start|>assistant\n(2 + 2) * 3 = 12.<|im_end|>\n<|im_start|>assistant\n",
        "short|add_generation_prompt=false": "<|im_start|>user\nHello! What is 2 + 2?<|im_end|>\n<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n",
        "short|add_generation_prompt=true": "<|im_start|>user\nHello! What is 2 + 2?<|im_end|>\n<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n<|im_start|>assistant\n",
    },
    "deepseek_r1_distill_qwen": {
        "full|add_generation_prompt=false": "<｜begin▁of▁sentence｜>You are a helpful assistant.<｜User｜>Hello! What is 2 + 2?<｜Assistant｜>2 + 2 = 4.<｜end▁of▁sentence｜><｜User｜>And times 3?<｜Assistant｜>(2 + 2) * 3 = 12.<｜end▁of▁sentence｜>",
        "full|add_generation_prompt=true": "<｜begin▁of▁sentence｜>You are a helpful assistant.<｜User｜>Hello! What is 2 + 2?<｜Assistant｜>2 + 2 = 4.<｜end▁of▁sentence｜><｜User｜>And times 3?<｜Assistant｜>(2 + 2) * 3 = 12.<｜end▁of▁sentence｜><｜Assistant｜><think>\n",
        "short|add_generation_prompt=false": "<｜begin▁of▁sentence｜><｜User｜>Hello! What is 2 + 2?<｜Assistant｜>2 + 2 = 4.<｜end▁of▁sentence｜>",
        "short|add_generation_prompt=true": "<｜begin▁of▁sentence｜><｜User｜>Hello! What is 2 + 2?<｜Assistant｜>2 + 2 = 4.<｜end▁of▁sentence｜><｜Assistant｜><think>\n",
    },
    "gemma2": {
        "full|add_generation_prompt=false": RaisesError("System role not supported"),
        "full|add_generation_prompt=true": RaisesError("System role not supported"),
        "short|add_generation_prompt=false": "<bos><start_of_turn>user\nHello! What is 2 + 2?<end_of_turn>\n<start_of_turn>model\n2 + 2 = 4.<end_of_turn>\n",
        "short|add_generation_prompt=true": "<bos><start_of_turn>user\nHello! What is 2 + 2?<end_of_turn>\n<start_of_turn>model\n2 + 2 = 4.<end_of_turn>\n<start_of_turn>model\n",
    },
    "gemma3": {
        "full|add_generation_prompt=false": "<bos><start_of_turn>user\nYou are a helpful assistant.\n\nHello! What is 2 + 2?<end_of_turn>\n<start_of_turn>model\n2 + 2 = 4.<end_of_turn>\n<start_of_turn>user\nAnd times 3?<end_of_turn>\n<start_of_turn>model\n(2 + 2) * 3 = 12.<end_of_turn>\n",
        "full|add_generation_prompt=true": "<bos><start_of_turn>user\nYou are a helpful assistant.\n\nHello! What is 2 + 2?<end_of_turn>\n<start_of_turn>model\n2 + 2 = 4.<end_of_turn>\n<start_of_turn>user\nAnd times 3?<end_of_turn>\n<start_of_turn>model\n(2 + 2) * 3 = 12.<end_of_turn>\n<start_of_turn>model\n",
        "short|add_generation_prompt=false": "<bos><start_of_turn>user\nHello! What is 2 + 2?<end_of_turn>\n<start_of_turn>model\n2 + 2 = 4.<end_of_turn>\n",
        "short|add_generation_prompt=true": "<bos><start_of_turn>user\nHello! What is 2 + 2?<end_of_turn>\n<start_of_turn>model\n2 + 2 = 4.<end_of_turn>\n<start_of_turn>model\n",
    },
    "llama3": {
        "full|add_generation_prompt=false": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello! What is 2 + 2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n2 + 2 = 4.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnd times 3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n(2 + 2) * 3 = 12.<|eot_id|>",
        "full|add_generation_prompt=true": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello! What is 2 + 2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n2 + 2 = 4.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnd times 3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n(2 + 2) * 3 = 12.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        "short|add_generation_prompt=false": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello! What is 2 + 2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n2 + 2 = 4.<|eot_id|>",
        "short|add_generation_prompt=true": "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello! What is 2 + 2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n2 + 2 = 4.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    },
    "llama3_1": {
        "full|add_generation_prompt=false": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello! What is 2 + 2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n2 + 2 = 4.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnd times 3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n(2 + 2) * 3 = 12.<|eot_id|>",
        "full|add_generation_prompt=true": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello! What is 2 + 2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n2 + 2 = 4.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnd times 3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n(2 + 2) * 3 = 12.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        "short|add_generation_prompt=false": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello! What is 2 + 2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n2 + 2 = 4.<|eot_id|>",
        "short|add_generation_prompt=true": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello! What is 2 + 2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n2 + 2 = 4.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    },
    "llama3_2": {
        "full|add_generation_prompt=false": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello! What is 2 + 2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n2 + 2 = 4.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnd times 3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n(2 + 2) * 3 = 12.<|eot_id|>",
        "full|add_generation_prompt=true": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello! What is 2 + 2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n2 + 2 = 4.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnd times 3?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n(2 + 2) * 3 = 12.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        "short|add_generation_prompt=false": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello! What is 2 + 2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n2 + 2 = 4.<|eot_id|>",
        "short|add_generation_prompt=true": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello! What is 2 + 2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n2 + 2 = 4.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    },
    "mistral_v0_3": {
        "full|add_generation_prompt=false": "<s>[INST] Hello! What is 2 + 2?[/INST] 2 + 2 = 4.</s>[INST] And times 3?[/INST] (2 + 2) * 3 = 12.</s>",
        "full|add_generation_prompt=true": "<s>[INST] Hello! What is 2 + 2?[/INST] 2 + 2 = 4.</s>[INST] And times 3?[/INST] (2 + 2) * 3 = 12.</s>",
        "short|add_generation_prompt=false": "<s>[INST] Hello! What is 2 + 2?[/INST] 2 + 2 = 4.</s>",
        "short|add_generation_prompt=true": "<s>[INST] Hello! What is 2 + 2?[/INST] 2 + 2 = 4.</s>",
    },
    "phi3": {
        "full|add_generation_prompt=false": "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello! What is 2 + 2?<|end|>\n<|assistant|>\n2 + 2 = 4.<|end|>\n<|user|>\nAnd times 3?<|end|>\n<|assistant|>\n(2 + 2) * 3 = 12.<|end|>\n<|endoftext|>",
        "full|add_generation_prompt=true": "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello! What is 2 + 2?<|end|>\n<|assistant|>\n2 + 2 = 4.<|end|>\n<|user|>\nAnd times 3?<|end|>\n<|assistant|>\n(2 + 2) * 3 = 12.<|end|>\n<|assistant|>\n",
        "short|add_generation_prompt=false": "<|user|>\nHello! What is 2 + 2?<|end|>\n<|assistant|>\n2 + 2 = 4.<|end|>\n<|endoftext|>",
        "short|add_generation_prompt=true": "<|user|>\nHello! What is 2 + 2?<|end|>\n<|assistant|>\n2 + 2 = 4.<|end|>\n<|assistant|>\n",
    },
    "phi3_5": {
        "full|add_generation_prompt=false": "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello! What is 2 + 2?<|end|>\n<|assistant|>\n2 + 2 = 4.<|end|>\n<|user|>\nAnd times 3?<|end|>\n<|assistant|>\n(2 + 2) * 3 = 12.<|end|>\n<|endoftext|>",
        "full|add_generation_prompt=true": "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello! What is 2 + 2?<|end|>\n<|assistant|>\n2 + 2 = 4.<|end|>\n<|user|>\nAnd times 3?<|end|>\n<|assistant|>\n(2 + 2) * 3 = 12.<|end|>\n<|assistant|>\n",
        "short|add_generation_prompt=false": "<|user|>\nHello! What is 2 + 2?<|end|>\n<|assistant|>\n2 + 2 = 4.<|end|>\n<|endoftext|>",
        "short|add_generation_prompt=true": "<|user|>\nHello! What is 2 + 2?<|end|>\n<|assistant|>\n2 + 2 = 4.<|end|>\n<|assistant|>\n",
    },
    "phi4": {
        "full|add_generation_prompt=false": "<|im_start|>system<|im_sep|>You are a helpful assistant.<|im_end|><|im_start|>user<|im_sep|>Hello! What is 2 + 2?<|im_end|><|im_start|>assistant<|im_sep|>2 + 2 = 4.<|im_end|><|im_start|>user<|im_sep|>And times 3?<|im_end|><|im_start|>assistant<|im_sep|>(2 + 2) * 3 = 12.<|im_end|>",
        "full|add_generation_prompt=true": "<|im_start|>system<|im_sep|>You are a helpful assistant.<|im_end|><|im_start|>user<|im_sep|>Hello! What is 2 + 2?<|im_end|><|im_start|>assistant<|im_sep|>2 + 2 = 4.<|im_end|><|im_start|>user<|im_sep|>And times 3?<|im_end|><|im_start|>assistant<|im_sep|>(2 + 2) * 3 = 12.<|im_end|><|im_start|>assistant<|im_sep|>",
        "short|add_generation_prompt=false": "<|im_start|>user<|im_sep|>Hello! What is 2 + 2?<|im_end|><|im_start|>assistant<|im_sep|>2 + 2 = 4.<|im_end|>",
        "short|add_generation_prompt=true": "<|im_start|>user<|im_sep|>Hello! What is 2 + 2?<|im_end|><|im_start|>assistant<|im_sep|>2 + 2 = 4.<|im_end|><|im_start|>assistant<|im_sep|>",
    },
    "qwen2_5": {
        "full|add_generation_prompt=false": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello! What is 2 + 2?<|im_end|>\n<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n<|im_start|>user\nAnd times 3?<|im_end|>\n<|im_start|>assistant\n(2 + 2) * 3 = 12.<|im_end|>\n",
        "full|add_generation_prompt=true": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello! What is 2 + 2?<|im_end|>\n<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n<|im_start|>user\nAnd times 3?<|im_end|>\n<|im_start|>assistant\n(2 + 2) * 3 = 12.<|im_end|>\n<|im_start|>assistant\n",
        "short|add_generation_prompt=false": "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello! What is 2 + 2?<|im_end|>\n<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n",
        "short|add_generation_prompt=true": "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello! What is 2 + 2?<|im_end|>\n<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n<|im_start|>assistant\n",
    },
    "qwen3": {
        "full|add_generation_prompt=false": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello! What is 2 + 2?<|im_end|>\n<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n<|im_start|>user\nAnd times 3?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n(2 + 2) * 3 = 12.<|im_end|>\n",
        "full|add_generation_prompt=true": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello! What is 2 + 2?<|im_end|>\n<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n<|im_start|>user\nAnd times 3?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n(2 + 2) * 3 = 12.<|im_end|>\n<|im_start|>assistant\n",
        "short|add_generation_prompt=false": "<|im_start|>user\nHello! What is 2 + 2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n2 + 2 = 4.<|im_end|>\n",
        "short|add_generation_prompt=true": "<|im_start|>user\nHello! What is 2 + 2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n2 + 2 = 4.<|im_end|>\n<|im_start|>assistant\n",
    },
    "qwen3_initial": {
        "full|add_generation_prompt=false": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello! What is 2 + 2?<|im_end|>\n<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n<|im_start|>user\nAnd times 3?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n(2 + 2) * 3 = 12.<|im_end|>\n",
        "full|add_generation_prompt=true": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello! What is 2 + 2?<|im_end|>\n<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n<|im_start|>user\nAnd times 3?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n(2 + 2) * 3 = 12.<|im_end|>\n<|im_start|>assistant\n",
        "short|add_generation_prompt=false": "<|im_start|>user\nHello! What is 2 + 2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n2 + 2 = 4.<|im_end|>\n",
        "short|add_generation_prompt=true": "<|im_start|>user\nHello! What is 2 + 2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n2 + 2 = 4.<|im_end|>\n<|im_start|>assistant\n",
    },
    "smollm2": {
        "full|add_generation_prompt=false": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello! What is 2 + 2?<|im_end|>\n<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n<|im_start|>user\nAnd times 3?<|im_end|>\n<|im_start|>assistant\n(2 + 2) * 3 = 12.<|im_end|>\n",
        "full|add_generation_prompt=true": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello! What is 2 + 2?<|im_end|>\n<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n<|im_start|>user\nAnd times 3?<|im_end|>\n<|im_start|>assistant\n(2 + 2) * 3 = 12.<|im_end|>\n<|im_start|>assistant\n",
        "short|add_generation_prompt=false": "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHello! What is 2 + 2?<|im_end|>\n<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n",
        "short|add_generation_prompt=true": "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHello! What is 2 + 2?<|im_end|>\n<|im_start|>assistant\n2 + 2 = 4.<|im_end|>\n<|im_start|>assistant\n",
    },
}
