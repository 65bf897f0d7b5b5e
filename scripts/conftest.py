"""pytest setup for scripts/: makes the ``ofa`` package importable and offers shared fixtures."""

import os
import sys

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
if SCRIPTS not in sys.path:
    sys.path.insert(0, SCRIPTS)
