"""Training: one accelerate loop (`loop.train`) driven by a `TrainingTask` per stage.

Stage 1 (encoder + implicit decoder) is `autoencoder.AutoencoderTask`, the LIIF baseline `liif.LIIFTask`;
checkpoint folders are handled by `checkpoints`. Submodules are imported where used, so importing this package stays cheap.
"""
