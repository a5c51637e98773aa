"""method=fast: a feed-forward net trained once per style, then stylizing any photo in one pass.

``method.py`` is the plugin and dispatches on ``mode``; ``train.py`` trains (Lightning), ``stylize.py``
runs a trained net on a photo or a folder, ``export.py`` writes ONNX, ``checkpoint.py`` reads and
writes the nets.
"""
