"""The shape of the code: no import cycles, and the extension points each a single declaration."""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "src"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """Every ftkit module imported anywhere in the file (functions included), except under TYPE_CHECKING."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in found if name in modules and name != module}


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(path): path for path in (SOURCE / "ftkit").rglob("*.py")}
    modules = set(files)
    return {
        name: _imports(ast.parse(path.read_text()), name, path.name == "__init__.py", modules)
        for name, path in files.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_no_module_imports_a_module_that_imports_it_back():
    graph = import_graph()
    assert "ftkit.cli" in graph and graph["ftkit.config"]  # the walker sees the package
    assert cycles(graph) == []


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# ------------------------------------------------------------------ extension points


def test_a_stage_a_format_and_a_metric_are_each_one_declaration(tmp_path, request, capsys, tiny_model_dir):
    """Declared here, each in one place, they work in the recipe, `ftkit check`, `ftkit data preview`
    and `ftkit data stats` (and `ftkit eval`'s metric computation) without touching ftkit's code."""
    import json

    from pydantic import Field

    from ftkit.cli import main
    from ftkit.config.sections.base import ConfigConflict, Section
    from ftkit.data.formats import FORMATS, Format, example, register_format
    from ftkit.data.processors import process_sft
    from ftkit.data.shapes import TOKENS
    from ftkit.evaluate import task_metrics
    from ftkit.metrics import METRICS, Metric, register_metric
    from ftkit.stages import STAGES, register_stage, sft
    from ftkit.stages.spec import StageSpec

    class EchoConfig(Section):
        """Settings of the echo stage."""

        repeats: int = Field(1, ge=1)
        """How often each answer is shown."""

    def echo_rule(recipe) -> None:
        if recipe.echo.repeats > 1 and recipe.data.packing:
            raise ConfigConflict("echo.repeats", "echo.repeats above 1 cannot be packed")

    register_stage(
        StageSpec(
            name="echo",
            description="supervised fine-tuning that repeats answers (a test stage)",
            process=process_sft,
            shape=TOKENS,
            arguments=sft.arguments,
            trainer=sft.trainer,
            packing=True,
            section=EchoConfig,
            check=echo_rule,
        )
    )
    request.addfinalizer(lambda: STAGES.pop("echo"))
    register_format(
        Format(
            "qa_lines",
            lambda row, spec: example(
                messages=[{"role": "user", "content": row["q"]}, {"role": "assistant", "content": row["a"]}]
            ),
            lambda spec: ["q", "a"],
            description="{q, a} rows (a test format)",
        )
    )
    request.addfinalizer(lambda: FORMATS.pop("qa_lines"))
    register_metric(
        Metric(
            "answer_chars",
            "mean characters per answer (a test metric)",
            generated=lambda answers, refs, labels: {"answer_chars": sum(map(len, answers)) / len(answers)},
        )
    )
    request.addfinalizer(lambda: METRICS.pop("answer_chars"))

    data = tmp_path / "data"
    data.mkdir()
    (data / "dataset_info.json").write_text(
        json.dumps({"lines": {"file_name": "lines.jsonl", "formatting": "qa_lines"}})
    )
    (data / "lines.jsonl").write_text(
        '{"q": "Two plus two?", "a": "Four."}\n{"q": "Bees make?", "a": "Honey."}\n'
    )
    recipe = tmp_path / "echo.yaml"
    recipe.write_text(
        f"stage: echo\necho: {{repeats: 2}}\n"
        f"model: {{name_or_path: {tiny_model_dir}, template: chatml}}\n"
        f"data: {{dataset_dir: {data}, train: lines, max_length: 64, cache_dir: {tmp_path / 'cache'}}}\n"
        f"train: {{output_dir: {tmp_path / 'run'}}}\neval: {{metrics: [loss, answer_chars]}}\n"
    )

    assert main(["check", str(recipe), "-q"]) == 0
    out = capsys.readouterr().out
    assert "stage        echo: supervised fine-tuning that repeats answers" in out
    assert "lines: qa_lines from lines.jsonl" in out
    assert main(["data", "stats", str(recipe)]) == 0
    assert "train: 2 examples" in capsys.readouterr().out
    assert main(["data", "preview", str(recipe), "-n", "1"]) == 0
    assert "[[Four.<|im_end|>]]" in capsys.readouterr().out
    assert task_metrics(["abcd", "ab"], ["x", "y"], ["answer_chars"], []) == {"answer_chars": 3.0}

    # The stage's section and rule are the recipe's: a typo and a broken rule are exit 2 at check.
    assert main(["check", str(recipe), "-q", "echo.repeets=2"]) == 2
    assert "unknown key echo.repeets (did you mean repeats?)" in capsys.readouterr().err
    assert main(["check", str(recipe), "-q", "data.packing=true"]) == 2
    assert "echo.repeats above 1 cannot be packed" in capsys.readouterr().err


def test_a_stage_missing_a_piece_fails_when_it_is_declared():
    import pytest

    from ftkit.data.processors import process_sft
    from ftkit.data.shapes import TOKENS
    from ftkit.stages import sft
    from ftkit.stages.spec import StageSpec

    with pytest.raises(TypeError, match="trainer"):
        StageSpec(name="half", description="x", process=process_sft, shape=TOKENS, arguments=sft.arguments)
    with pytest.raises(
        TypeError, match=r"stage 'half' is declared incompletely: arguments must be a function"
    ):
        StageSpec(
            name="half",
            description="x",
            process=process_sft,
            shape=TOKENS,
            arguments=None,
            trainer=sft.trainer,
        )
    with pytest.raises(TypeError, match="shape must be a DataShape"):
        StageSpec(
            name="half",
            description="x",
            process=process_sft,
            shape=("input_ids",),
            arguments=sft.arguments,
            trainer=sft.trainer,
        )
