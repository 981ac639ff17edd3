"""``python -m training`` is the ``newsrec`` command."""

import sys

from training.cli import main

sys.exit(main())
