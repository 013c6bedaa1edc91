"""``python -m pdecontrol``: the ``pdecontrol`` command."""

import sys

from pdecontrol.cli import main

sys.exit(main())
