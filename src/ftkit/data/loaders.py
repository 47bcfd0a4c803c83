"""Load the raw rows of a registry entry: local files through `datasets`' builders, hub ids through
`datasets.load_dataset` (the code a user runs; tests feed it local files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftkit.data.registry import DatasetSpec
from ftkit.errors import UserError

BUILDERS = {
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".arrow": "arrow",
    ".txt": "text",
}


def local_files(spec: DatasetSpec, dataset_dir: Path) -> tuple[str, list[Path]]:
    """The builder name and the files of a local entry (a file, or a folder of files of one type)."""
    assert spec.file_name
    path = dataset_dir / spec.file_name
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in BUILDERS)
        if not files:
            raise UserError(f"dataset {spec.name!r}: folder {path} holds no {', '.join(BUILDERS)} files")
    elif path.is_file():
        files = [path]
    else:
        raise UserError(f"dataset {spec.name!r}: file {path} does not exist (file_name in {dataset_dir})")
    kinds = {BUILDERS.get(p.suffix) for p in files}
    if None in kinds:
        raise UserError(f"dataset {spec.name!r}: {path} is not one of {', '.join(BUILDERS)}")
    if len(kinds) > 1:
        raise UserError(f"dataset {spec.name!r}: folder {path} mixes file types {sorted(kinds)}")
    return kinds.pop(), files


def load_rows(spec: DatasetSpec, dataset_dir: str | Path) -> Any:
    """The entry's rows as a `datasets.Dataset`."""
    import datasets

    if spec.file_name:
        builder, files = local_files(spec, Path(dataset_dir))
        try:
            return datasets.load_dataset(builder, data_files=[str(f) for f in files], split="train")
        except (ValueError, datasets.exceptions.DatasetGenerationError) as exc:
            cause = exc.__cause__ or exc
            raise UserError(f"dataset {spec.name!r}: cannot read {spec.file_name}: {cause}") from None
    try:
        return datasets.load_dataset(
            spec.hf_hub_url,
            name=spec.subset,
            data_dir=spec.folder,
            split=spec.split,
            revision=spec.revision,
        )
    except (FileNotFoundError, ConnectionError, datasets.exceptions.DatasetNotFoundError) as exc:
        raise UserError(
            f"dataset {spec.name!r}: cannot load {spec.source} from the Hugging Face hub ({exc}); "
            "check the id and your network, or download it and point file_name at the files"
        ) from None
