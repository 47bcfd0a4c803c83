"""Training on a stream (data.streaming): the trainer side of data/stream.py.

transformers' Trainer reads an iterable dataset through Accelerate, which splits it between processes
itself, and resumes by reading again every batch the run had consumed. A stream from data/stream.py is
already this process's share, and its position is part of its state, so `streamed()` adds three things to
a trainer class:
- the training DataLoader is Accelerate's stateful one (torchdata's StatefulDataLoader underneath),
  prepared for this process alone (no second split);
- every checkpoint holds each process's stream position and counts (`stream_state_<rank>.json`), written
  before the trainer state that marks the checkpoint complete; a resumed run loads it and continues there
  (the recipe sets `ignore_data_skip`, so nothing is read twice to skip it);
- the batches trained are counted (sequences, tokens, tokens with a loss), and all processes' counts go to
  the run record at every checkpoint and at the end.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from ftkit.data.stream_counts import StreamCounts
from ftkit.errors import UserError

log = logging.getLogger(__name__)

STATE_FILE = "stream_state_{rank}.json"
IGNORE_INDEX = -100


class StreamedTraining:
    """A mixin placed before a transformers Trainer class (see `streamed`)."""

    stream_counts: StreamCounts
    on_stream_counts: Callable[[StreamCounts], None] | None = None
    """Called in the main process with all processes' counts, at every checkpoint and at the end."""
    _stream_checkpoint: str | None = None
    _stream_loader: Any = None

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs: Any) -> Any:
        self._stream_checkpoint = resume_from_checkpoint if isinstance(resume_from_checkpoint, str) else None
        output = super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)  # type: ignore[misc]
        self._report_counts()
        steps, wanted = self.state.global_step, self.args.max_steps  # type: ignore[attr-defined]
        if steps < wanted:
            # The streams repeat forever; one ends only when a dataset has no usable row for this process.
            counts = self.stream_counts
            raise UserError(
                f"the training stream of process {self.args.process_index} ran out after {steps} of "  # type: ignore[attr-defined]
                f"train.max_steps={wanted} steps: a training dataset gives it no usable example (rows read "
                f"{counts.read}, filtered {counts.filtered}, skipped {counts.skipped}). Check the datasets' "
                "filters and rows, or train with fewer processes than a small dataset has rows"
            )
        return output

    def get_train_dataloader(self) -> Any:
        import torch
        from accelerate.data_loader import prepare_data_loader
        from torch.utils.data import DataLoader

        args, accelerator = self.args, self.accelerator  # type: ignore[attr-defined]
        loader = DataLoader(
            self.train_dataset,  # type: ignore[attr-defined]
            batch_size=self._train_batch_size,  # type: ignore[attr-defined]
            collate_fn=self._get_collator_with_removed_columns(self.data_collator, "training"),  # type: ignore[attr-defined]
            pin_memory=args.dataloader_pin_memory,
            # Starting to read draws a seed: from the loader's own generator, not the global one that a
            # resumed run restores just before (dropout would shift by one draw otherwise).
            generator=torch.Generator().manual_seed(args.seed),
        )
        # One process's share already: Accelerate must not split it again.
        prepared = prepare_data_loader(
            loader,
            accelerator.device,
            num_processes=1,
            process_index=0,
            put_on_device=accelerator.device_placement,
            non_blocking=accelerator.non_blocking,
            dispatch_batches=False,  # each process reads its own share (the default reads on one, for all)
            use_stateful_dataloader=True,
        )
        accelerator._dataloaders.append(prepared)
        # Count what training reads, not the first rows that were looked at to set the stream up.
        self.stream_counts.load(StreamCounts().as_dict())
        if self._stream_checkpoint is not None:
            self._restore(prepared, Path(self._stream_checkpoint))
        self._stream_loader = prepared
        return prepared

    def _restore(self, loader: Any, checkpoint: Path) -> None:
        rank = self.args.process_index  # type: ignore[attr-defined]
        path = checkpoint / STATE_FILE.format(rank=rank)
        if not path.is_file():
            raise UserError(
                f"{checkpoint} holds no stream position for process {rank} ({path.name}): it was not saved by "
                "a streamed run with this number of processes; resume it with the recipe that wrote it"
            )
        saved = json.loads(path.read_text(encoding="utf-8"))
        loader.load_state_dict(saved["loader"])
        self.stream_counts.load(saved["counts"])
        trained = self.stream_counts.trained
        log.info(
            "the stream continues where %s left it: %d sequences trained, rows read %s (not from row 0)",
            checkpoint.name,
            trained["sequences"],
            self.stream_counts.read,
        )

    def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: Any) -> Any:
        batches, items = super().get_batch_samples(epoch_iterator, num_batches, device)  # type: ignore[misc]
        trained = self.stream_counts.trained
        for batch in batches:
            trained["sequences"] += _sequences(batch)
            mask = batch.get("attention_mask")
            trained["tokens"] += int(mask.sum()) if mask is not None else batch["input_ids"].numel()
            trained["trained_tokens"] += int((batch["labels"] != IGNORE_INDEX).sum())
        return batches, items

    def _save_rng_state(self, output_dir: str) -> None:
        # Called in every process while a checkpoint is written, before the trainer state that completes it:
        # the stream position is saved with the random states, as part of the same checkpoint.
        super()._save_rng_state(output_dir)  # type: ignore[misc]
        state = {"loader": self._stream_loader.state_dict(), "counts": self.stream_counts.as_dict()}
        path = Path(output_dir) / STATE_FILE.format(rank=self.args.process_index)  # type: ignore[attr-defined]
        path.write_text(json.dumps(state), encoding="utf-8")
        self._report_counts()

    def _report_counts(self) -> None:
        """All processes' counts to the main process's `on_stream_counts` (a collective: every process calls it)."""
        import torch.distributed as dist

        parts = [self.stream_counts.as_dict()]
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            parts = [None] * dist.get_world_size()
            dist.all_gather_object(parts, self.stream_counts.as_dict())
        if self.on_stream_counts is not None and self.args.process_index == 0:  # type: ignore[attr-defined]
            self.on_stream_counts(StreamCounts.total(parts))


def _sequences(batch: dict[str, Any]) -> int:
    """Examples in a batch: rows, or sequence starts when several share a row (packing, padding-free)."""
    positions = batch.get("position_ids")
    if positions is not None and "attention_mask" not in batch:
        return int((positions == 0).sum())
    return int(batch["input_ids"].shape[0])


@cache
def streamed(trainer_class: type) -> type:
    """`trainer_class` training on a stream from data/stream.py."""
    return type(f"Streamed{trainer_class.__name__}", (StreamedTraining, trainer_class), {})
