"""Pure domain: the models and rules of a request, with no I/O."""
