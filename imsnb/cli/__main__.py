"""`python -m imsnb.cli`: the `imsnb` command (cron's fallback when the console script is not beside Python)."""

import sys

from imsnb.cli import main

sys.exit(main())
