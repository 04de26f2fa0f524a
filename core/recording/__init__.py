"""Recording calls: one or a batch, priced and stored with their roll-ups in one unit of work.

``calls`` records (and validates) calls, ``rollups`` keeps the roll-ups that reports read,
``hooks`` lets a higher package act when calls are recorded (budgets, limits), ``importer``
reads files of calls, ``track`` wraps a provider client (``core.tracking`` is its public name),
``audit`` verifies and reprices a logged call, ``testcall`` makes the dashboard's test call,
``demo`` loads synthetic usage.
"""
