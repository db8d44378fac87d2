"""The web app's parts: plain helpers (uploads, the shared engine, runs, evidence, page images) and, in
``views``, one module per page section. ``ui/app.py`` is only the entry that wires them together.

Kept as a package under ``ui/`` (put on ``sys.path`` by app.py) so that names like ``uploads`` never collide
with an installed module, and so the plain helpers can be tested without a browser.
"""
