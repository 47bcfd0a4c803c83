"""Load the raw rows of a registry entry: local files through `datasets`' builders, hub ids through
`datasets.load_dataset` (the code a user runs; tests feed it local files)."""

from __future__ import annotations

import codecs
import os
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
TEXT_BUILDERS = ("json", "csv", "text")
ENCODING_CHECK_BYTES = 64 * 2**20
"""How much of each text file `check_files` decodes up front; the loader reports problems further on."""


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


def _check_text(path: Path, name: str) -> None:
    """The file's first ENCODING_CHECK_BYTES decode as UTF-8 and hold more than whitespace."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line, content = 0, 1, False
    with path.open("rb") as handle:
        while offset < ENCODING_CHECK_BYTES and (chunk := handle.read(1 << 20)):
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                position = offset + exc.start
                line += chunk[: exc.start].count(b"\n")
                raise UserError(
                    f"dataset {name!r}: {path} is not UTF-8 text (byte 0x{chunk[exc.start]:02x} at offset "
                    f"{position}, line {line}); save it as UTF-8"
                ) from None
            content = content or bool(text.strip())
            line += chunk.count(b"\n")
            offset += len(chunk)
    if not content and offset < ENCODING_CHECK_BYTES:
        raise UserError(f"dataset {name!r}: {path} holds only whitespace; it has no rows")


def check_files(spec: DatasetSpec, dataset_dir: str | Path) -> list[Path]:
    """The entry's local files, each checked to be readable, not empty and (for text formats) UTF-8."""
    builder, files = local_files(spec, Path(dataset_dir))
    for path in files:
        if path.stat().st_size == 0:
            raise UserError(f"dataset {spec.name!r}: {path} is empty (0 bytes)")
        if not os.access(path, os.R_OK):
            raise UserError(f"dataset {spec.name!r}: {path} cannot be read (permission denied)")
        if builder in TEXT_BUILDERS:
            _check_text(path, spec.name)
    return files


def load_rows(spec: DatasetSpec, dataset_dir: str | Path, streaming: bool = False) -> Any:
    """The entry's rows as a `datasets.Dataset`, or read lazily as a `datasets.IterableDataset`."""
    import datasets

    if spec.file_name:
        builder, files = local_files(spec, Path(dataset_dir))
        try:
            return datasets.load_dataset(
                builder, data_files=[str(f) for f in files], split="train", streaming=streaming
            )
        except (ValueError, OSError, StopIteration, datasets.exceptions.DatasetGenerationError) as exc:
            # datasets wraps the reader's error (pyarrow's, a decoding error, an empty file's StopIteration)
            cause = exc.__cause__ or exc
            reason = str(cause) or f"{type(cause).__name__} (no rows could be read)"
            raise UserError(f"dataset {spec.name!r}: cannot read {spec.file_name}: {reason}") from None
    try:
        return datasets.load_dataset(
            spec.hf_hub_url,
            name=spec.subset,
            data_dir=spec.folder,
            split=spec.split,
            revision=spec.revision,
            streaming=streaming,
        )
    except (FileNotFoundError, ConnectionError, datasets.exceptions.DatasetNotFoundError) as exc:
        raise UserError(
            f"dataset {spec.name!r}: cannot load {spec.source} from the Hugging Face hub ({exc}); "
            "check the id and your network, or download it and point file_name at the files"
        ) from None
