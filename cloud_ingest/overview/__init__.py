"""One screen over the whole area (一屏观全域): roll-ups of the site tree and SVG plans of sites."""
