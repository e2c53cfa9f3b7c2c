"""Indexing: walk the paths, decode in worker processes (``pool``), embed and write (``run``)."""
