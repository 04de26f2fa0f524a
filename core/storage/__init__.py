"""Storage: the engine and units of work, the tables and column types, and the migrations.

``engine`` opens a database (SQLite or PostgreSQL) and runs a unit of work; ``columns``
decides once how money and times are stored; ``tables``, ``budget_tables`` and ``key_tables``
declare the tables, ``schema`` lists them; ``migrate`` and ``migrations/`` upgrade a database in place.
"""
