"""The admin API (SPEC section 6): ``/v1/...`` on the web process, bearer-token protected."""
