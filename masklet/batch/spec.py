"""What a batch run needs besides its job: the model each worker builds, and how the work is spread.

Both are frozen dataclasses of plain values, so they pickle to Ray workers on other machines and their
settings can be compared between a run and its resume.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from .items import BatchInputError

__all__ = ["ModelSpec", "RunOptions"]


@dataclass(frozen=True)
class ModelSpec:
    """The model every worker builds once, when it starts.

    name: a preset or alias (``sam2.1_hiera_tiny``), or ``"auto"`` with a checkpoint (inferred from it).
    checkpoint: a ``.pt``/``.safetensors`` path (on storage every worker sees); None: the official file
        from the cache directory (downloaded there the first time).
    dtype: ``fp32``, ``bf16`` or ``auto`` (bfloat16 where the worker's device runs it fast), as
        :func:`masklet.build_model`; encoder_dtype: the image encoder's own dtype (None: ``dtype``).
    device: ``cpu``, ``cuda``, ... (None: the best device the worker has: a GPU when Ray gave it one).
    image_size: the model's input side in pixels (None: the preset's 1024).
    random_weights: seeded random weights instead of a checkpoint (every worker gets the same ones;
        the masks are meaningless: for tests of the pipeline).
    compile: ``torch.compile`` the heavy modules in each worker (for GPUs).
    """

    name: str = "sam2.1_hiera_tiny"
    checkpoint: str | None = None
    dtype: str = "fp32"
    device: str | None = None
    image_size: int | None = None
    encoder_dtype: str | None = None
    random_weights: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        # workers elsewhere (other processes, other machines) must find the file this process means
        if self.checkpoint is not None and "://" not in str(self.checkpoint):
            object.__setattr__(self, "checkpoint", str(Path(self.checkpoint).expanduser().absolute()))

    def check(self) -> None:
        """Every mistake that can be found without building the model (run before any work starts)."""
        from ..presets import get_preset
        from ..runtime import parse_dtype

        if self.random_weights and self.checkpoint is not None:
            raise BatchInputError("random weights and a checkpoint exclude each other; give only one of them")
        if self.checkpoint is None or self.name != "auto":
            try:
                get_preset(self.name, self.image_size)
            except (KeyError, ValueError) as exc:
                raise BatchInputError(str(exc).strip("'\"")) from None
        if self.checkpoint is not None and "://" not in self.checkpoint:
            if not Path(self.checkpoint).is_file():
                raise BatchInputError(
                    f"checkpoint {self.checkpoint} not found; every worker loads it from this path, so "
                    "put it on storage all of them see"
                )
        for value in (self.dtype, self.encoder_dtype):
            if value is not None and str(value).lower() != "auto":
                parse_dtype(value)

    def build(self):
        """The :class:`masklet.SAM2Model`, in eval mode on the worker's device."""
        from ..checkpoints import build_model

        return build_model(
            self.name,
            self.checkpoint,
            device=self.device,  # None: the best device this worker has
            dtype=self.dtype,
            image_size=self.image_size,
            compile=self.compile,
            encoder_dtype=self.encoder_dtype,
            # seed 0: the same weights in every worker, and as the CLI's --random-weights
            random_seed=0 if self.random_weights else None,
        )

    def weights(self) -> str:
        """``random``, ``official`` or ``checkpoint:<file name>``: where the weights come from."""
        if self.random_weights:
            return "random"
        return "official" if self.checkpoint is None else f"checkpoint:{Path(self.checkpoint).name}"

    def settings(self) -> dict:
        """The values that change the masks (what a resumed run must share with the first one)."""
        out = asdict(self)
        out.pop("device")
        out.pop("compile")
        out["checkpoint"] = self.weights()
        return out


@dataclass(frozen=True)
class RunOptions:
    """How items are spread over workers.

    workers: model replicas working at once (each builds its own model); more than 1 needs ``ray``.
    threads_per_worker: CPU threads of each worker's torch (and the CPUs Ray reserves for it); None:
        torch's own choice in this process, 1 per Ray worker.
    gpus_per_worker: GPUs Ray reserves for each worker; fractions share a GPU (0.5: two per GPU).
    limit: only the first ``limit`` items (in name order) of the dataset.
    ray: False runs the items in this process; True uses Ray (the cluster of ``RAY_ADDRESS``, else a
        new local instance bound to 127.0.0.1); a string is the address of the cluster to join
        (``host:port`` or ``ray://host:port``).
    retry_failed: run again the items an earlier run recorded as failed (default: keep them failed).
    max_retries: times Ray runs an item again after its worker process died (killed, out of memory).
    progress: the live progress bar on stderr: None shows it on a terminal, True always, False never.
    """

    workers: int = 1
    threads_per_worker: int | None = None
    gpus_per_worker: float = 0.0
    limit: int | None = None
    ray: bool | str = False
    retry_failed: bool = False
    max_retries: int = 2
    progress: bool | None = None

    def check(self) -> None:
        """User mistakes in the options, before any work."""
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise BatchInputError(f"workers must be a whole number >= 1, got {self.workers!r}")
        if self.threads_per_worker is not None and self.threads_per_worker < 1:
            raise BatchInputError(f"threads per worker must be >= 1, got {self.threads_per_worker}")
        if not self.gpus_per_worker >= 0:
            raise BatchInputError(
                f"GPUs per worker must be >= 0 (fractions allowed), got {self.gpus_per_worker}"
            )
        if self.gpus_per_worker > 1 and self.gpus_per_worker != int(self.gpus_per_worker):
            raise BatchInputError(
                f"GPUs per worker above 1 must be a whole number, got {self.gpus_per_worker}; a worker "
                "uses one model on one device"
            )
        if self.limit is not None and self.limit < 1:
            raise BatchInputError(f"limit must be >= 1, got {self.limit}")
        if self.max_retries < 0:
            raise BatchInputError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.ray is False:
            if self.workers > 1:
                raise BatchInputError(
                    f"{self.workers} workers need Ray: add --ray (a local Ray instance, or the cluster of "
                    "RAY_ADDRESS); without it items run one at a time in this process"
                )
            if self.gpus_per_worker:
                raise BatchInputError(
                    "GPUs per worker are reserved through Ray: add --ray, or choose the device with --device"
                )

    @property
    def address(self) -> str | None:
        """The cluster to join: the given address, else ``RAY_ADDRESS``; None starts a local instance."""
        if isinstance(self.ray, str) and self.ray:
            return self.ray
        return os.environ.get("RAY_ADDRESS") or None
