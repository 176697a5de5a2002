"""GB/T 26875.3-2011 (fire-alarm transmission protocol) helpers: frame layer and information objects.

The codec `serial.gbt26875_3` and the stream framer `framing/gbt26875.py` build on these.
"""
