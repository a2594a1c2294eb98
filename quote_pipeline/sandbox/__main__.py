"""``python -m quote_pipeline.sandbox``: the sandbox server without the full CLI."""

import sys

from quote_pipeline.sandbox.command import main

sys.exit(main())
