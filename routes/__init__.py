"""HTTP entrypoints beside the pages: thin Starlette route modules calling ``core``.

``server.py`` mounts them next to the dashboard; ``standalone.app`` serves them alone
(``python -m core serve``).
"""
