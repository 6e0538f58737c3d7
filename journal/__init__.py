"""QLDB journal stream records and the hash arithmetic that proves them.

Shared by the ingest Lambda (which must not import ionhash or pyqldb) and the settler.
"""
