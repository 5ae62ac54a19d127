"""The local web app (`arbiscale serve`); needs the `web` extra (Gradio)."""
