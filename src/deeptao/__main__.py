"""``python -m deeptao``: the ``deeptao`` command (what a distributed launcher re-runs in each process)."""

import sys

from deeptao.cli import main

sys.exit(main())
