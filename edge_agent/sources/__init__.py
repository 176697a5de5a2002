"""Sources: move bytes from devices to the pipeline as RawFrames; they never decode."""
