"""``python -m bot`` is the ``glider-relay`` console script."""

from bot.cli import main

raise SystemExit(main())
