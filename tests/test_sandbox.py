"""The code and reasoning-format rewards, and the sandbox that runs a completion's code: separate
processes with a timeout, a memory limit and no network; never the trainer's process."""

from __future__ import annotations

import os

from ftkit.sandbox import Limits, run_many, run_python
from ftkit.stages.rewards import completion_code, resolve_reward

TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0"


def test_code_tests_scores_each_completion_by_the_references_tests():
    reward = resolve_reward("code_tests", {"timeout_s": 2})
    completions = [
        "Here it is:\n```python\ndef add(a, b):\n    return a + b\n```\nDone.",  # fenced: the block runs
        "def add(a, b):\n    return a + b",  # plain code
        "def add(a, b):\n    return a - b",  # wrong
        "def add(a, b)\n    return a + b",  # does not parse
        "import os\nos._exit(0)\ndef add(a, b): return 0",  # exits 0 before the tests: passes, by design
        "def add(a, b): return a + b",
    ]
    scores = reward(completions, reference=[TESTS] * 5 + [None])
    assert scores == [1.0, 1.0, 0.0, 0.0, 1.0, None]


def test_the_sandbox_stops_endless_loops_memory_hogs_and_network_use():
    loop = run_python("while True: pass", Limits(timeout_s=1))
    assert loop.reason == "timeout"
    hog = run_python("blob = bytearray(4 * 1024**3)", Limits(memory_mb=256))
    assert hog.reason == "failed" and "MemoryError" in hog.stderr
    for attempt in (
        "import socket; socket.create_connection(('127.0.0.1', 9))",
        "import _socket; _socket.socket().connect(('127.0.0.1', 9))",
    ):
        outcome = run_python(attempt)
        assert not outcome.passed and "OSError" in outcome.stderr


def test_sandboxed_code_runs_in_another_process_with_an_empty_environment(tmp_path):
    os.environ["FTKIT_SANDBOX_SECRET"] = "do-not-leak"
    try:
        program = (
            f"import os\nassert os.getpid() != {os.getpid()}\n"
            "assert 'FTKIT_SANDBOX_SECRET' not in os.environ\n"
            f"assert os.getcwd() != {str(os.getcwd())!r}"
        )
        assert [o.reason for o in run_many([program, "raise SystemExit(3)"])] == ["passed", "failed"]
    finally:
        del os.environ["FTKIT_SANDBOX_SECRET"]


def test_completion_code_takes_the_last_fenced_block():
    text = "```python\nx = 1\n```\nthen\n```py\nx = 2\n```"
    assert completion_code(text) == "x = 2\n" and completion_code("x = 3") == "x = 3"


def test_think_format_wants_reasoning_then_an_answer():
    reward = resolve_reward("think_format", {})
    completions = [
        "<think>2 and 3 make 5</think> 5",
        "\n<think>\nsteps\n</think>\n\nThe answer is 5.",
        "5",
        "<think></think>5",
        "<think>steps</think>",
        "<think>a</think>b<think>c</think>d",
        "<think>unfinished 5",
    ]
    assert reward(completions) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
