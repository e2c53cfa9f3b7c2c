"""Vector stores. ``milvus`` is the one backend; ``filters`` builds its expressions."""
