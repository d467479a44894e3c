"""The web page served at ``/`` (HTML, CSS, JS; no external assets)."""
