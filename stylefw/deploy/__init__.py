"""Stylize with an exported method=fast model using only onnxruntime, NumPy and Pillow: no torch.

This is what a deployment uses: it starts in a fraction of a second and needs none of
stylefw's training stack. From the shell::

    python -m stylefw.deploy starry.onnx photo.jpg stylized.png [--size 1024] [--threads 2]

From Python::

    from stylefw.deploy import Stylizer
    stylizer = Stylizer("starry.onnx")                      # load once
    stylizer.stylize_file("photo.jpg", "stylized.png")      # or stylizer(pixels) on 1x3xHxW float32 arrays
"""

from stylefw.deploy.runtime import Stylizer, load_rgb, main

__all__ = ["Stylizer", "load_rgb", "main"]
