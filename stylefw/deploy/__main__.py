"""``python -m stylefw.deploy MODEL.onnx INPUT OUTPUT.png``: see :mod:`stylefw.deploy`."""

import sys

from stylefw.deploy.runtime import main

sys.exit(main())
