"""The admin API (docs/contract.md §6): ``/v1/...`` on the web process, bearer-token protected."""
