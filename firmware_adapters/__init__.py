"""Pure decoders: framers (bytes to frames), codecs (frame to readings), encoders for simulators."""
