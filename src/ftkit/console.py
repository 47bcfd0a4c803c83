"""What reaches the terminal: ftkit's log lines, redacted, without the notices and progress bars that
libraries print about their own internals (ftkit logs what they did: rows read, examples tokenized,
the device used). Called by the CLI, the edge that owns the terminal."""

from __future__ import annotations

import logging
import sys
import warnings

from ftkit.config.redact import RedactingFilter

LOG_FORMAT = "%(asctime)s %(levelname).1s %(name)s: %(message)s"
_NOTICES = (
    # DeepSpeed, imported by transformers or peft whenever it is installed, on any machine without a GPU.
    ("DeepSpeed", "Setting accelerator to CPU"),
)


class _DropNotice(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


class _BelowWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def configure_logging(level: str) -> None:
    """ftkit's log format on stderr, secrets redacted, library notices dropped or quieted."""
    logging.basicConfig(
        level=getattr(logging, level.upper()), format=LOG_FORMAT, datefmt="%H:%M:%S", stream=sys.stderr
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())  # no secret from the environment reaches a log line
    for name, text in _NOTICES:
        # On the logger itself: the library adds its own handler and sets its own level later.
        logging.getLogger(name).addFilter(_DropNotice(text))
    # MLflow sets its own loggers' levels when imported: its notices about its store's tables are dropped
    # by filters on those loggers instead (ftkit logs the run and the store it uses).
    for name in ("mlflow.store.db.utils", "mlflow.tracking.fluent", "alembic.runtime.migration"):
        logging.getLogger(name).addFilter(_BelowWarning())
    for noisy in ("httpx", "urllib3", "filelock", "fsspec", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # bitsandbytes warns at import on CPUs about an optional kernel package that ftkit does not need.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    # peft reads a property that transformers 5 renamed; the warning is about library internals.
    warnings.filterwarnings(
        "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
    )
    # torchdata's StatefulDataLoader (streamed runs) calls a torch function that torch 2.13 deprecated.
    warnings.filterwarnings("ignore", message="'set_vital' is deprecated", category=UserWarning)
    # The stages on TRL's experimental trainers say so themselves (stages/reference_free.py).
    warnings.filterwarnings("ignore", message="You are importing from 'trl.experimental'")


def quiet_library_progress() -> None:
    """No progress bars from datasets' maps, transformers' shard writing or hub downloads: the trainer's
    own bar (on a terminal) and ftkit's log lines say where a run is."""
    import datasets
    import transformers
    from huggingface_hub.utils import disable_progress_bars

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    disable_progress_bars()


def interactive() -> bool:
    """Whether stderr is a terminal (progress bars redraw in place there; in a log file they are noise)."""
    return sys.stderr.isatty()
