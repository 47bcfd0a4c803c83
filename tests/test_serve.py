"""`ftkit serve` on the tiny trained model, in a subprocess on 127.0.0.1, spoken to with the official openai
client: chat (streamed and not), completions and models; eight concurrent requests each answered as
`ftkit generate` answers that prompt (greedy); 401 without the key, 400 for a body that is not JSON,
422 for a request without messages, 404 for another model; the server stays healthy."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

KEY = "test-key-123"
PROMPTS = [
    f"What is {a} plus {b}?" for a, b in ((1, 2), (2, 5), (3, 3), (4, 1), (5, 2), (6, 6), (7, 1), (8, 2))
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir) -> Path:
    from tests.test_resume import recipe_file

    work = tmp_path_factory.mktemp("serve")
    recipe = recipe_file(work, tiny_model_dir, max_steps=2, save_strategy="no", learning_rate=1.0e-2)
    result = run_cli("train", str(recipe))
    assert result.returncode == 0, result.stderr[-3000:]
    return recipe


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(trained):
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ftkit", "serve", str(trained), "--port", str(port), "--api-key", KEY],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        assert process.poll() is None, process.stderr.read()[-3000:]
        assert time.time() < deadline, "the server never became healthy"
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if json.load(response)["status"] == "ok":
                    break
        except OSError:
            time.sleep(0.3)
    yield url
    process.terminate()
    process.wait(timeout=30)


def _generated(trained: Path, tmp_path: Path, max_tokens: int) -> list[str]:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    out = tmp_path / "answers.jsonl"
    result = run_cli(
        "generate",
        str(trained),
        "--input",
        str(prompts),
        "--output",
        str(out),
        "--max-new-tokens",
        str(max_tokens),
        "--batch-size",
        "1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line)["response"] for line in out.read_text().splitlines()]


def test_openai_client_gets_the_answers_ftkit_generate_gives(server, trained, tmp_path):
    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key=KEY)
    [model] = client.models.list().data
    expected = _generated(trained, tmp_path, 12)
    assert len(set(expected)) > 1, expected  # different prompts, different answers: a mix-up would show

    def ask(prompt: str) -> str:
        reply = client.chat.completions.create(
            model=model.id, messages=[{"role": "user", "content": prompt}], temperature=0, max_tokens=12
        )
        return reply.choices[0].message.content

    with ThreadPoolExecutor(8) as pool:  # concurrent requests are queued, never mixed
        answers = list(pool.map(ask, PROMPTS))
    assert answers == expected

    def streamed(**options: object) -> tuple[list[str], str]:
        chunks = list(
            client.chat.completions.create(
                model=model.id,
                messages=[{"role": "user", "content": PROMPTS[0]}],
                temperature=0,
                stream=True,
                **options,
            )
        )
        pieces = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices[0].delta.content]
        return pieces, chunks[-1].choices[0].finish_reason

    pieces, finish = streamed(max_tokens=12)
    assert "".join(pieces) == expected[0] and len(pieces) > 3, pieces  # sent while it is generated
    assert finish == "length"
    stop = expected[0][len(expected[0]) // 2 :][:3]  # the request's stop string, wherever it falls in tokens
    pieces, finish = streamed(max_tokens=12, stop=[stop])
    assert "".join(pieces) == expected[0][: expected[0].index(stop)] and finish == "stop", (
        pieces,
        stop,
        expected[0],
    )
    short = client.chat.completions.create(
        model=model.id,
        messages=[{"role": "user", "content": PROMPTS[0]}],
        temperature=0,
        max_tokens=12,
        stop=stop,
    )
    assert short.choices[0].message.content == "".join(pieces) and short.choices[0].finish_reason == "stop"

    completion = client.completions.create(
        model=model.id, prompt="The capital of", max_tokens=5, temperature=0
    )
    again = client.completions.create(model=model.id, prompt="The capital of", max_tokens=5, temperature=0)
    assert completion.choices[0].text == again.choices[0].text
    assert completion.usage.prompt_tokens > 0


def _post(url: str, body: bytes, key: str | None = KEY) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_bad_requests_get_openai_errors_and_the_server_stays_up(server):
    chat = f"{server}/v1/chat/completions"
    good = json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}).encode()
    status, body = _post(chat, good, key=None)
    assert status == 401 and "API key" in body["error"]["message"]
    status, body = _post(chat, good, key="wrong")
    assert status == 401
    status, body = _post(chat, b"{not json")
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    status, body = _post(chat, json.dumps({"max_tokens": 2}).encode())
    assert status == 422 and body["error"]["param"] == "messages"
    status, body = _post(
        chat, json.dumps({"model": "other", "messages": [{"role": "user", "content": "hi"}]}).encode()
    )
    assert status == 404 and "is not served here" in body["error"]["message"]
    with urllib.request.urlopen(f"{server}/health", timeout=5) as response:
        assert json.load(response)["status"] == "ok"
    status, body = _post(chat, good)
    assert status == 200 and body["choices"][0]["message"]["role"] == "assistant"


def test_serving_beyond_this_machine_needs_a_key(trained):
    result = run_cli("serve", str(trained), "--host", "0.0.0.0")
    assert (
        result.returncode == 2 and "without --api-key would let anyone on the network use it" in result.stderr
    )


def test_verify_passes_on_the_export_and_names_what_differs_when_it_does_not(trained, tmp_path):
    run = trained.parent / "run"
    exported = run_cli("export", str(trained))
    assert exported.returncode == 0, exported.stderr[-3000:]
    verified = json.loads((run / "merged" / "export.json").read_text())["verified"]
    assert verified["passed"] and verified["prompts"] == 2 and verified["max_logprob_gap"] < 1e-3
    assert "verified on 2 prompts: the export answers as the adapter" in exported.stderr
    result = run_cli("verify", str(run), "--count", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        "export: prompt | prompt text | prompt tokens | stop tokens | greedy output | log-probs"
        in result.stdout
    )

    import shutil

    broken = tmp_path / "other-template"
    shutil.copytree(run / "merged", broken)
    record = json.loads((broken / "export.json").read_text())
    (broken / "export.json").write_text(json.dumps({**record, "template": "alpaca"}))
    result = run_cli("verify", str(run), "--export", str(broken), "--count", "2")
    assert result.returncode == 2 and "prompt differs at character 0" in result.stdout
    assert "verification failed: 2 of 2 prompts differ" in result.stderr

    wrong_eos = tmp_path / "wrong-eos"
    shutil.copytree(run / "merged", wrong_eos)
    generation = json.loads((wrong_eos / "generation_config.json").read_text())
    (wrong_eos / "generation_config.json").write_text(json.dumps({**generation, "eos_token_id": [0]}))
    result = run_cli("verify", str(run), "--export", str(wrong_eos), "--count", "2")
    assert result.returncode == 2 and "stop tokens: trained [" in result.stdout


def test_verify_compares_a_served_endpoint(server, trained):
    result = run_cli(
        "verify", str(trained.parent / "run"), "--endpoint", f"{server}/v1", "--api-key", KEY, "--count", "2"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "endpoint: prompt | greedy output" in result.stdout


@pytest.mark.parametrize(
    ("stops", "pieces", "final"),
    [
        ([], ["Wh", " 2", " 2", " 2"], "Wh 2 2 2"),
        # a stop string that arrives over two tokens is held back, never sent
        ([" 2 "], ["Wh"], "Wh"),
        (["2 2"], ["Wh"], "Wh"),
    ],
)
def test_streamed_pieces_are_the_answer_and_hold_back_a_stop_string(tiny_model_dir, stops, pieces, final):
    from transformers import AutoTokenizer

    from ftkit.serve_engines import Answer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    sent: list[str] = []
    answer = Answer(tokenizer, ["<|im_end|>"], stops, sent.append)
    for token in tokenizer.encode("Wh 2 2 2<|im_end|> 2", add_special_tokens=False):
        answer.add([token])
        if answer.stopped.is_set():
            break
    assert answer.finish() == final and sent == pieces


def test_vllm_engine_needs_a_merged_model_and_vllm(trained, tiny_model_dir, tmp_path, capsys):
    import yaml

    from ftkit.cli import main

    recipe = yaml.safe_load(trained.read_text())
    recipe["export"] = {"output_dir": str(tmp_path / "not-exported")}
    unexported = tmp_path / "recipe.yaml"
    unexported.write_text(yaml.safe_dump(recipe))
    assert main(["serve", str(unexported), "--engine", "vllm"]) == 2
    assert "--engine vllm serves a merged model: run `ftkit export RECIPE` first" in capsys.readouterr().err
    assert main(["serve", str(tiny_model_dir), "--engine", "vllm"]) == 2
    assert "--engine vllm needs vLLM: pip install 'ftkit[vllm]'" in capsys.readouterr().err
