"""``masklet eval vos --ray``: the video object segmentation evaluation's runs, one item per video.

Each worker opens the dataset once and runs :func:`masklet.eval.vos_runner.run_video` for its
videos, writing each video's predictions folder (``<predictions>/<video>/``) through the same atomic
staging and status records as every batch job, so an evaluation spread over a cluster resumes where
it stopped. Scoring stays with the caller (it reads the predictions folder when all videos are done).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .items import BatchInputError, Item, few
from .worker import ItemResult

__all__ = ["VosEvalJob"]


@dataclass(frozen=True)
class VosEvalJob:
    """Prompt and track every video of a benchmark (see :mod:`masklet.eval.vos_runner`).

    dataset, layout, split: as :func:`masklet.eval.layouts.open_dataset`; prompt: ``mask``, ``box`` or
    ``click1/3/5``; late_objects: also prompt objects that appear after the first annotated frame;
    videos: only these videos (None: the whole split).
    """

    dataset: str
    layout: str = "davis"
    split: str | None = None
    prompt: str = "mask"
    late_objects: bool = True
    videos: tuple[str, ...] | None = None
    mode = "eval-vos"

    def __post_init__(self) -> None:
        # the workers open the dataset themselves, in other processes: give them absolute paths
        object.__setattr__(self, "dataset", str(Path(self.dataset).absolute()))
        if self.split is not None and Path(self.split).suffix == ".txt" and Path(self.split).is_file():
            object.__setattr__(self, "split", str(Path(self.split).absolute()))

    def _open(self):
        from ..eval.layouts import open_dataset

        return open_dataset(self.dataset, self.layout, self.split)

    def discover(self) -> tuple[list[Item], list[str]]:
        from ..eval.vos_runner import PROMPTS

        if self.prompt not in PROMPTS:
            raise BatchInputError(f"unknown prompt {self.prompt!r}: use one of {', '.join(PROMPTS)}")
        dataset = self._open()
        names = dataset.videos() if self.videos is None else list(self.videos)
        unknown = [v for v in names if v not in dataset.videos()]
        if unknown or not names:
            raise BatchInputError(f"videos {few(unknown) or '(none)'} are not in the dataset's list")
        for name in names:
            dataset.image_paths(name)  # a video without frames stops the run here
        return [Item(name, {"video": name}) for name in names], []

    def settings(self) -> dict:
        return {
            "dataset": str(Path(self.dataset).resolve()),
            "layout": self.layout,
            "split": self.split,
            "prompt": self.prompt,
            "late_objects": self.late_objects,
        }

    def setup(self, model, meta: dict):
        from ..inference.video import VideoPredictor

        dataset = self._open()
        predictor = VideoPredictor(model)

        def work(item: Item, folder: Path) -> ItemResult:
            from ..eval.vos_runner import run_video

            video = item.data["video"]
            run = run_video(predictor, dataset, video, folder, self.prompt, self.late_objects)
            return ItemResult([video], frames=run.num_frames, masks=run.num_frames * len(run.first_frame))

        return work

    def finish(self, out: Path, done: list[Item]) -> list[str]:
        return []
