"""Query: a file (or text) in, the library's most similar files out (``search``), ranked with copy evidence (``rank``), aligned in time (``align``, ``place``)."""
