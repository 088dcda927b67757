"""python -m visionfn: the command line."""

import sys

from visionfn.cli import main

sys.exit(main())
