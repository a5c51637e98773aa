"""method=fast: a feed-forward net trained once per style, then stylizing any photo in one pass.

Johnson, Alahi & Fei-Fei 2016, "Perceptual Losses for Real-Time Style Transfer and
Super-Resolution". Three modes (the top-level ``mode`` key):

- ``train`` (default): train the `net` plugin on the `data` photos against the run's loss
  terms and style, with the `optimizer` group's optimizer; checkpoints every
  ``checkpoint_every`` steps, at the end and on Ctrl-C or SIGTERM; ``checkpoint=`` resumes one.
  The run's image is the content stylized by the net.
- ``stylize``: ``checkpoint=`` names a trained net; ``content=`` is a photo or a folder of them.
- ``export``: write the trained net as ONNX, checked against torch with onnxruntime.
"""

from __future__ import annotations

from stylefw.errors import StylefwError, check_whole_number
from stylefw.method import Method, RunContext, RunResult

from .export import export
from .stylize import stylize
from .train import TrainingSettings, train


class FastMethod(Method):
    """Johnson et al.'s feed-forward style transfer, trained and run by Lightning.

    Args:
        steps: training steps (batches); Johnson et al.: 40 000 at batch 4.
        checkpoint_every: save ``checkpoints/last.ckpt`` every N steps (also at the end and on interrupt).
        val_every: validation images are stylized and logged every epoch, or every this many steps
            when epochs are shorter (a small photo folder).
        log_every: log loss terms every N steps.
        tile: stylizing: images larger than this on a side are processed in windows of this size.
        overlap: stylizing: neighbouring windows share (and cross-fade over) this many pixels.
        teacher: distillation: a trained net's checkpoint (or run folder); the net then learns to
            reproduce the teacher's output (mean squared pixel difference) instead of minimizing the
            loss terms, with no backbone pass per step. Trains a slim net from a full one.
    """

    modes = ("train", "stylize", "export")
    supports_mask_style = False  # the net knows one style, fixed when it was trained

    def __init__(self, steps: int = 2000, checkpoint_every: int = 200, val_every: int = 100, log_every: int = 10,
                 tile: int = 1024, overlap: int = 64, teacher: str | None = None) -> None:
        self.training = TrainingSettings(
            steps=check_whole_number("method.steps", steps),
            checkpoint_every=check_whole_number("method.checkpoint_every", checkpoint_every),
            val_every=check_whole_number("method.val_every", val_every),
            log_every=check_whole_number("method.log_every", log_every),
            teacher=teacher,
        )
        self.tile = check_whole_number("method.tile", tile, 64)
        self.overlap = check_whole_number("method.overlap", overlap, 0)
        if self.overlap * 2 >= self.tile:
            raise StylefwError(f"method.overlap={overlap} must be less than half of method.tile={tile}")

    def planned_shape(self, context: RunContext) -> tuple[int, int] | None:
        # Stylizing is tiled (memory bounded whatever the size); training memory depends on data.crop, not content.
        return None

    def run(self, context: RunContext) -> RunResult:
        mode = context.cfg.get("mode") or self.modes[0]
        if mode == "train":
            return train(context, self.training, self.tile, self.overlap)
        if mode == "stylize":
            return stylize(context, self.tile, self.overlap)
        return export(context)
