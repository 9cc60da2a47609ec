"""Import this first in every benchmark script.

Python puts a script's own folder first on ``sys.path``; here that folder holds
``queue.py`` and ``scheduler.py``, which would shadow the standard library's ``queue``
and firehook's ``scheduler`` package.  This puts the repository root first and the folder
last (child processes that re-import the script still find this module); scripts import
their helpers as ``benchmarks._common``.
"""

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_ROOT = str(_HERE.parent)
sys.path[:] = [_ROOT] + [p for p in sys.path if p not in (str(_HERE), "", _ROOT)] + [str(_HERE)]
