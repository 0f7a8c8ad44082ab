"""`python -m app.data`: the inspect command (app.data.cli)."""

import sys

from app.data.cli import main

sys.exit(main())
