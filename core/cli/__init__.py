"""The command line (``spendboard ...``, ``python -m core ...``): one module per command family.

``main`` parses and dispatches; ``common`` holds the bad-input error and the engine every
command opens; ``prices``, ``sync``, ``budgets`` and ``keys`` add their families. No rule
of the product lives here: each command calls a use case of a ``core`` package.
"""
