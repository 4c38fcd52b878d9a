"""``python -m tfrs_recsys``: the same as the ``tfrs-recsys`` command."""

from tfrs_recsys.cli import main

raise SystemExit(main())
