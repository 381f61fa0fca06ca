"""Schema revisions, written by hand: one module per revision, chained by ``down_revision``.

A new revision copies the shape of ``0001_initial.py``: explicit ``op`` calls naming every
constraint and index exactly as ``stores/postgres/schema.py`` does (the schema tests compare
the two), and a ``downgrade`` that undoes it.
"""
