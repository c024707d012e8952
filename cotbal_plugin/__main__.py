"""``python -m cotbal_plugin`` = the ``cotbal`` CLI."""

import sys

from cotbal_plugin.cli import main

sys.exit(main())
