"""`arbiscale serve`: the local web app (needs the `web` extra: pip install "arbiscale[web]").

Binds to 127.0.0.1 unless --host says otherwise; everything it serves ships with the package
(no CDN, analytics off). One job at a time per model; up to --max-queue more wait, the rest are
told the server is busy.
"""

from __future__ import annotations

import argparse
import os

from ..choices import BUNDLED_GENERATORS, BUNDLED_UPSCALERS
from ..errors import UserError
from .inference_options import bundled_models_help, int_at_least


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help='a local web app for upscaling and generation (pip install "arbiscale[web]")', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", metavar="NAME|DIR", help=f"the upscaler: {bundled_models_help(BUNDLED_UPSCALERS)}")
    parser.add_argument("--gen-model", metavar="NAME|DIR", help=f"the generator: {bundled_models_help(BUNDLED_GENERATORS)}")
    parser.add_argument("--no-generate", action="store_true", help="serve the upscale tab only")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", default="7860", help="port (default 7860)")
    parser.add_argument("--max-side", default="2048", metavar="PX", help="largest output side a request may ask for (default 2048)")
    parser.add_argument("--max-queue", default="8", metavar="N", help="requests waiting per model before new ones are refused as busy (default 8)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default auto)")
    parser.add_argument("--dtype", default="auto", help=argparse.SUPPRESS)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise UserError('the web app needs Gradio: pip install "arbiscale[web]"') from None
    from ..pipelines import GenerationPipeline, UpscalePipeline
    from ..web.app import Limits, build_app, refuse_image_bombs
    from .inference_options import device_and_dtype

    port = int_at_least(args.port, "--port")
    limits = Limits(max_side=int_at_least(args.max_side, "--max-side", 8), max_queue=int_at_least(args.max_queue, "--max-queue"))
    device, _ = device_and_dtype(args)
    upscaler = UpscalePipeline.from_pretrained(args.model).to(device)
    generator = None if args.no_generate else GenerationPipeline.from_pretrained(args.gen_model).to(device)
    refuse_image_bombs(limits.max_upload_pixels)
    app = build_app(upscaler, generator, limits)
    print(f"arbiscale serve: http://{args.host}:{port} (Ctrl-C stops)", flush=True)
    app.launch(server_name=args.host, server_port=port, share=False, quiet=True, max_file_size=limits.max_upload)
    return 0
