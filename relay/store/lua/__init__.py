"""The store's Lua scripts, one ``.lua`` file each, loaded by :mod:`relay.store.scripts`."""
