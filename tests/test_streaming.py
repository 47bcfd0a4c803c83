"""Streamed training data (data.streaming): the mixture as sampled, each process's own rows, counts in the
run record, exact resume from a killed run, two processes, and the options a stream refuses."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli
from tests.pause_at import kill, start_paused


def write_data(folder: Path, shards: int = 1) -> Path:
    """Two alpaca datasets of distinct questions, a text corpus (in `shards` files) and the registry."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, topic in (("alpha", "river"), ("beta", "mountain")):
        rows = [
            {"instruction": f"Name {topic} {i}.", "input": "", "output": f"The {topic} is {i}."}
            for i in range(300)
        ]
        (folder / f"{name}.json").write_text(json.dumps(rows))
    corpus = folder / "corpus"
    corpus.mkdir(exist_ok=True)
    docs = [{"text": f"document {i} says the river meets the mountain"} for i in range(600)]
    for shard in range(shards):
        lines = [json.dumps(d) for d in docs[shard::shards]]
        (corpus / f"part-{shard}.jsonl").write_text("\n".join(lines) + "\n")
    registry = {
        "alpha": {"file_name": "alpha.json"},
        "beta": {"file_name": "beta.json"},
        "corpus": {"file_name": "corpus", "formatting": "text"},
    }
    (folder / "dataset_info.json").write_text(json.dumps(registry))
    return folder


def write_hub_repo(folder: Path) -> Path:
    """A folder laid out like a hub dataset repository (two parquet shards of the corpus), loaded through
    `load_dataset(id, streaming=True)` as a hub id is."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "data").mkdir(parents=True)
    for shard in range(2):
        texts = [f"document {i} says the river meets the mountain" for i in range(shard, 600, 2)]
        pq.write_table(pa.table({"text": texts}), folder / "data" / f"train-0000{shard}-of-00002.parquet")
    return folder


def sft_recipe(work: Path, model: Path, **data: object) -> dict:
    return {
        "stage": "sft",
        "model": {"name_or_path": str(model), "template": "chatml"},
        "adapter": {"type": "lora", "r": 4, "alpha": 8},
        "data": {
            "dataset_dir": str(write_data(work / "data")),
            "streaming": True,
            "shuffle_buffer": 50,
            "max_length": 64,
            "train": [{"name": "alpha", "weight": 0.7}, {"name": "beta", "weight": 0.3}],
            **data,
        },
        "train": {
            "output_dir": str(work / "run"),
            "max_steps": 8,
            "per_device_train_batch_size": 4,
            "learning_rate": 1e-3,
            "logging_steps": 1,
            "save_steps": 4,
        },
    }


def save(recipe: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def losses(out: Path) -> list[float]:
    state = json.loads((out / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def open_recipe(recipe: dict, path: Path):
    from ftkit.config import load_recipe

    return load_recipe(str(save(recipe, path)), [])


def test_a_weighted_mixture_is_sampled_as_weighted(tmp_path, tiny_model_dir, chatml_tokenizer):
    from ftkit.data.stream import open_stream
    from ftkit.data.stream_counts import StreamCounts
    from ftkit.templates import get_template

    recipe = open_recipe(sft_recipe(tmp_path, tiny_model_dir), tmp_path / "r.yaml")
    counts = StreamCounts()
    stream = open_stream(recipe, chatml_tokenizer, get_template("chatml"), counts)
    rows = list(itertools.islice(stream, 2000))
    assert len(rows) == 2000 and all(len(row["input_ids"]) == len(row["labels"]) for row in rows)
    # Examples are tokenized 1000 at a time: exactly the 2000 the rows came from.
    assert sum(counts.examples.values()) == 2000
    realized = counts.examples["alpha"] / 2000
    assert realized == pytest.approx(0.7, abs=0.03), counts.examples
    # The 300-row datasets repeat rather than run out.
    assert counts.read["alpha"] > 300 and counts.read["beta"] > 300


@pytest.mark.parametrize("source", ["one file", "two files", "hub id"])
def test_two_processes_read_disjoint_rows_that_cover_the_data(tmp_path, tiny_model_dir, source):
    from ftkit.data.registry import Registry
    from ftkit.data.stream import Share, dataset_stream
    from ftkit.data.stream_counts import StreamCounts

    recipe = sft_recipe(tmp_path, tiny_model_dir)
    recipe["stage"], recipe["model"]["template"] = "pt", None
    data = write_data(tmp_path / "d", shards=2 if source == "two files" else 1)
    recipe["data"] |= {"train": "corpus", "dataset_dir": str(data)}
    if source == "hub id":
        entries = json.loads((data / "dataset_info.json").read_text())
        hub = {"hf_hub_url": str(write_hub_repo(tmp_path / "hub")), "formatting": "text"}
        (data / "dataset_info.json").write_text(json.dumps({**entries, "corpus": hub}))
    loaded = open_recipe(recipe, tmp_path / "r.yaml")
    registry = Registry(loaded.data.dataset_dir)
    seen = []
    for rank in (0, 1):
        stream = dataset_stream(loaded.data.train[0], registry, loaded, StreamCounts(), Share(rank, 2))
        seen.append([row["text"] for row in stream])
    assert set(seen[0]).isdisjoint(seen[1])
    assert len(seen[0]) == len(seen[1]) == 300 and len(set(seen[0]) | set(seen[1])) == 600


def test_a_streamed_run_counts_what_it_read_and_trained(tmp_path, tiny_model_dir):
    recipe = sft_recipe(tmp_path, tiny_model_dir, on_bad_rows="skip")
    result = run_cli("train", str(save(recipe, tmp_path / "r.yaml")))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train data: streamed" in result.stderr
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    data = run["data"]
    by_name = {d["name"]: d for d in data["datasets"]}
    assert by_name["alpha"]["rows"] > 0 and by_name["beta"]["rows"] > 0
    assert by_name["alpha"]["used"] > by_name["beta"]["used"] > 0
    train = data["splits"]["train"]
    # 8 steps of 4 examples, each with its answer trained.
    assert train["examples"] == 32 and train["tokens"] > train["trained_tokens"] > 32
    for checkpoint in ("checkpoint-4", "checkpoint-8"):
        state = json.loads((tmp_path / "run" / checkpoint / "stream_state_0.json").read_text())
        assert state["counts"]["trained"]["sequences"] == int(checkpoint.split("-")[1]) * 4


def test_a_killed_streamed_run_resumes_where_the_stream_stopped(tmp_path, tiny_model_dir):
    recipe = sft_recipe(tmp_path, tiny_model_dir)
    path = save(recipe, tmp_path / "r.yaml")
    whole = tmp_path / "whole"
    result = run_cli("train", str(path), f"train.output_dir={whole}")
    assert result.returncode == 0, result.stderr[-3000:]

    killed = tmp_path / "run"
    # Stopped in step 6's training step, after checkpoint-4 was written.
    kill(
        start_paused(tmp_path, "transformers.trainer:Trainer.training_step", 6, "before", "train", str(path))
    )
    assert (killed / "checkpoint-4" / "stream_state_0.json").is_file()
    assert not (killed / "checkpoint-8").exists()
    result = run_cli("train", str(path), "train.resume_from_checkpoint=latest")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "the stream continues where checkpoint-4 left it: 16 sequences trained" in result.stderr
    assert "(not from row 0)" in result.stderr
    assert losses(killed) == pytest.approx(losses(whole), abs=1e-6)
    assert len(losses(killed)) == len(losses(whole)) == 8
    trained = [
        json.loads((out / "run.json").read_text())["data"]["splits"]["train"] for out in (killed, whole)
    ]
    assert trained[0] == trained[1]


def test_a_streamed_pretraining_run_in_two_processes(tmp_path, tiny_model_dir):
    recipe = sft_recipe(tmp_path, tiny_model_dir)
    recipe["stage"] = "pt"
    recipe["model"].pop("template")
    recipe["data"] |= {"train": "corpus", "dataset_dir": str(write_data(tmp_path / "d", shards=2))}
    recipe["train"] |= {"max_steps": 4, "save_steps": 2}
    result = run_cli("train", str(save(recipe, tmp_path / "r.yaml")), "--nproc", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == "completed" and run["world_size"] == 2
    # Blocks of max_length tokens, all trained: 4 steps x 4 blocks x 2 processes.
    train = run["data"]["splits"]["train"]
    assert train["examples"] == 32 and train["tokens"] == train["trained_tokens"] == 32 * 64
    saved = [
        json.loads((tmp_path / "run" / "checkpoint-4" / f"stream_state_{r}.json").read_text()) for r in (0, 1)
    ]
    assert [s["counts"]["trained"]["sequences"] for s in saved] == [16, 16]


def test_a_bad_row_in_a_stream_names_the_dataset_and_row(tmp_path, tiny_model_dir):
    recipe = sft_recipe(tmp_path, tiny_model_dir)
    data = Path(recipe["data"]["dataset_dir"])
    rows = json.loads((data / "beta.json").read_text())
    rows[3]["output"] = ""
    (data / "beta.json").write_text(json.dumps(rows))
    result = run_cli("train", str(save(recipe, tmp_path / "r.yaml")))
    assert result.returncode == 2, result.stderr[-3000:]
    assert "dataset 'beta' (beta.json), row 4:" in result.stderr and "on_bad_rows: skip" in result.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"data": {"val_size": 0.1}}, "data.val_size splits a dataset known in full"),
        ({"data": {"cache": True}}, "a stream is tokenized while training and never cached"),
        ({"data": {"num_proc": 2}}, "remove data.num_proc"),
        ({"data": {"mix_stop": "all_exhausted"}}, "streams repeat until train.max_steps"),
        ({"train": {"max_steps": -1}}, "set train.max_steps"),
        ({"train": {"group_by_length": True}}, "train.group_by_length sorts a dataset known in full"),
        ({"train": {"dataloader_num_workers": 2}}, "set train.dataloader_num_workers: 0"),
        ({"data": {"streaming": False}}, "data.shuffle_buffer applies to data.streaming: true"),
        ({"stage": "dpo"}, "data.streaming applies to stages pt and sft, not dpo"),
    ],
)
def test_what_a_stream_cannot_do_is_refused_at_check(tmp_path, tiny_model_dir, change, message):
    recipe = sft_recipe(tmp_path, tiny_model_dir)
    for key, value in change.items():
        if isinstance(value, dict):
            recipe[key] |= value
        else:
            recipe[key] = value
    result = run_cli("check", str(save(recipe, tmp_path / "r.yaml")), "-q")
    assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]


def test_a_deduplicated_entry_is_refused_for_a_stream_at_check(tmp_path, tiny_model_dir):
    recipe = sft_recipe(tmp_path, tiny_model_dir)
    registry = Path(recipe["data"]["dataset_dir"]) / "dataset_info.json"
    entries = json.loads(registry.read_text())
    entries["alpha"]["dedup"] = True
    registry.write_text(json.dumps(entries))
    result = run_cli("check", str(save(recipe, tmp_path / "r.yaml")), "-q")
    assert result.returncode == 2
    assert "dataset 'alpha': dedup compares every row with all the others" in result.stderr


def test_preview_reads_the_head_of_a_stream_and_stats_refuses(tmp_path, tiny_model_dir, capsys):
    from ftkit.cli import main
    from ftkit.data.tokenize import IGNORE_INDEX

    recipe = sft_recipe(tmp_path, tiny_model_dir, shuffle_buffer=1)
    recipe["data"]["train"] = "alpha"
    path = save(recipe, tmp_path / "r.yaml")
    assert main(["data", "preview", str(path), "-n", "2", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and IGNORE_INDEX in rows[0]["labels"]
    assert "Name river 0." in rows[0]["text"] and "The river is 1.<|im_end|>" in rows[1]["text"]
    result = run_cli("data", "stats", str(path))
    assert result.returncode == 2 and "data stats reads every example" in result.stderr


def test_eval_data_beside_a_stream_is_read_whole_and_ftkit_eval_uses_it(tmp_path, tiny_model_dir):
    recipe = sft_recipe(tmp_path, tiny_model_dir, eval="beta_eval")
    recipe["train"] |= {"eval_steps": 4}
    registry = Path(recipe["data"]["dataset_dir"]) / "dataset_info.json"
    entries = json.loads(registry.read_text())
    entries["beta_eval"] = {"file_name": "beta.json", "num_samples": 8}
    registry.write_text(json.dumps(entries))
    path = save(recipe, tmp_path / "r.yaml")
    result = run_cli("train", str(path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "eval data (tokenized): 8 examples" in result.stderr
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    assert [entry["step"] for entry in state["log_history"] if "eval_loss" in entry] == [4, 8]
    result = run_cli("eval", str(path))
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "eval_results.json").read_text())
    assert results["examples"] == 8 and results["fine_tuned"]["loss"] > 0


def test_a_packed_stream_trains_several_examples_per_row(tmp_path, tiny_model_dir):
    recipe = sft_recipe(tmp_path, tiny_model_dir, packing=True, max_length=128)
    recipe["train"] |= {"max_steps": 4, "save_strategy": "no"}
    result = run_cli("train", str(save(recipe, tmp_path / "r.yaml")))
    assert result.returncode == 0, result.stderr[-3000:]
    train = json.loads((tmp_path / "run" / "run.json").read_text())["data"]["splits"]["train"]
    # 4 steps of 4 rows of up to 128 tokens, each row holding several ~25-token examples.
    assert train["examples"] > 2 * 16 and train["tokens"] <= 16 * 128


def test_a_share_without_examples_stops_the_launch_with_one_message(tmp_path, tiny_model_dir):
    recipe = sft_recipe(tmp_path, tiny_model_dir, max_samples=1)
    result = run_cli("train", str(save(recipe, tmp_path / "r.yaml")), "--nproc", "2")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "dataset 'alpha' (alpha.json) gives no usable example to process 1 of 2" in result.stderr
    assert "launching" not in result.stderr and "Traceback" not in result.stderr
