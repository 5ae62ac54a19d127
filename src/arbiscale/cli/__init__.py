"""Command-line interface: `arbiscale upscale | generate | train | eval`."""
