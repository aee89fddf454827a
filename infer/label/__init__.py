"""``cm-label``: correct a cloud mask in the browser and save it as a training label.

:mod:`.core` holds the pure parts (mask <-> edit <-> label arrays, safe paths, the label
writer), :mod:`.server` the loopback HTTP server, :mod:`.cli` the Typer command; the page is
plain HTML/CSS/JS in ``static/``.  Nothing here imports TensorFlow.
"""
