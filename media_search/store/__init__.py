"""The store stage: vectors and their files in Milvus.

``milvus.MilvusStore`` is the one interface (vector collections and, through
``manifest.Manifest``, the files manifest); ``schema`` is the one table of
every collection's fields; ``records`` the typed values it returns; ``filters``
builds its expressions; ``connection`` and ``lite`` hold the client and Milvus
Lite's one-process lock.
"""
