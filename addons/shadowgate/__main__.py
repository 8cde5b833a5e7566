"""python -m shadowgate: the same as the `shadowgate` command."""

import sys

from shadowgate.cli import main

sys.exit(main())
