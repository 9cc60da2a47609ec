"""Import this first in every benchmark script.

Python puts a script's own folder first on ``sys.path``; here that folder holds
``queue.py`` and ``scheduler.py``, which would shadow the standard library's ``queue``
and firehook's ``scheduler`` package.  This takes the folder off ``sys.path`` and puts the
repository root first; scripts then import their helpers as ``benchmarks._common``.
"""

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if p not in (str(_HERE), "")]
