"""Decoders: a path in, pixels or samples out. One module per kind."""
