"""The national directory (Annuaire Santé): the extract, and realistic data for it.

``extract``: read, write and compare ``Extraction_Correspondance_MSSante``.
``generate``: plausible French extract rows at national scale, for demos and benchmarks.
"""
