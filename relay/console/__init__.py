"""The operator console (``/console``) and the partner portal (``/portal``): server-rendered
HTML on the web process (docs/contract.md §10), every action through the admin API's code."""
