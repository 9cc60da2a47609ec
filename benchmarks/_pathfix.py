"""Import this first in every benchmark script.

Python puts a script's own folder first on ``sys.path``; here that folder holds
``queue.py`` and ``scheduler.py``, which would shadow the standard library's ``queue``
and firehook's ``scheduler`` package.  This moves the folder to the end.
"""

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if p not in (_HERE, "")] + [_HERE]
