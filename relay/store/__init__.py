"""The Redis store: connections, key names, Lua steps and one store per record kind."""
