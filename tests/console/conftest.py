"""The console tests' fixtures (`tests/support/console_browser.py`): `world` and `browser`."""

from console_browser import browser, world

__all__ = ["browser", "world"]
