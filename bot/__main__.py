"""``python -m bot`` is the ``glider-relay`` console script."""

from bot.cli.main import main

raise SystemExit(main())
