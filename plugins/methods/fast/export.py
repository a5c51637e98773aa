"""``mode=export``: a trained transform net as ONNX, checked against torch with onnxruntime."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import torch

from stylefw.errors import StylefwError
from stylefw.method import RunContext, RunResult
from stylefw.runtime.files import atomic_path

from .checkpoint import load_net, resolve_checkpoint
from .stylize import style_reference

MIN_SIDE = 16  # the exported graph accepts any height and width from this up
INPUT_NAME, OUTPUT_NAME = "image", "stylized"
ONNX_TOLERANCE = 1e-3  # largest acceptable |onnxruntime − torch| per pixel, in [0, 1] units


def export(context: RunContext) -> RunResult:
    """``<style>.onnx`` in the run folder, checked on the content image against torch; the result is
    onnxruntime's stylization of the content."""
    cfg = context.cfg
    path = resolve_checkpoint(cfg.get("checkpoint"), "export")
    net, info = load_net(path)
    target = context.output_dir / f"{info['style']}.onnx"
    context.output_dir.mkdir(parents=True, exist_ok=True)
    export_onnx(net, target, context.content)
    exported, difference = onnx_difference(target, net, context.content)
    if difference > ONNX_TOLERANCE:
        raise StylefwError(f"the exported {target} differs from torch by up to {difference:.2g} (tolerance "
                           f"{ONNX_TOLERANCE:g}): a custom net may use an operation the exporter mistranslates")
    report = {"checkpoint": str(path), "onnx": str(target), "onnx_max_difference": difference}
    style = style_reference(info, cfg.size, cfg.max_image_pixels)
    return RunResult(image=torch.from_numpy(exported).clamp(0, 1), losses={"total": None}, steps=0, report=report,
                     files=[str(target)], name=f"{Path(str(cfg.content)).stem}_{info['style']}_onnx.png",
                     references=(context.original_content, style) if style is not None else None,
                     scored=style is not None)


def export_onnx(net: torch.nn.Module, path: Path, example: torch.Tensor) -> Path:
    """Write `net` (1×3×H×W in [0, 1] → 1×3×H×W) as one ONNX file with dynamic height and width.

    Uses torch's ``torch.export``-based exporter; the file appears under its name only once
    complete (written to a temporary name, then renamed).
    """
    net = net.eval().cpu()
    height, width = (torch.export.Dim(name, min=MIN_SIDE) for name in ("height", "width"))
    try:
        # The exporter prints its progress and warns about internals; a run's console shows neither.
        with atomic_path(path) as temporary, contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (example.cpu(),), str(temporary), dynamo=True, external_data=False,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_shapes={"image": {2: height, 3: width}})
    except Exception as error:
        raise StylefwError(f"the net could not be exported to ONNX ({' '.join(str(error).split())[:300]}): "
                           "a custom net plugin must be traceable by torch.export") from None
    return path


def onnx_difference(path: Path, net: torch.nn.Module, image: torch.Tensor) -> tuple[np.ndarray, float]:
    """onnxruntime's output for `image` and its largest absolute difference from torch's."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    exported = session.run(None, {INPUT_NAME: image.cpu().numpy().astype(np.float32)})[0]
    with torch.no_grad():
        reference = net.eval().cpu()(image.cpu()).numpy()
    return exported, float(np.abs(exported - reference).max())
