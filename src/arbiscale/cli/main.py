"""Entry point: each sub-command lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings

from ..errors import UserError, UserNotice
from .flags import as_flags

DESCRIPTION = (
    "Upsample images to any scale or size, and generate images at any resolution, with a latent diffusion "
    "model and an implicit neural decoder. Sizes are WIDTHxHEIGHT. Run `arbiscale COMMAND --help` for a command's options."
)


class OneLineParser(argparse.ArgumentParser):
    """Reports a bad command line (unknown option, missing or mistyped value) in one line, like a UserError.

    Sub-command parsers are made with the class of their parent, so every command inherits this.
    """

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    from . import commands

    parser = OneLineParser(prog="arbiscale", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"arbiscale {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in commands.REGISTRY:
        register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; user mistakes print one line to stderr and exit 2, never a traceback."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for stream in (sys.stdout, sys.stderr):  # a file name that is not valid UTF-8 prints escaped, not as a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    signal.signal(signal.SIGTERM, _interrupt)  # `kill`, systemd and `docker stop`: stop as Ctrl-C does
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, or a bad command line already reported in one line
        return 0 if stop.code is None else int(stop.code)
    show_warning = warnings.showwarning

    def show_notice(message, category, *rest) -> None:
        if issubclass(category, UserNotice):
            print(f"arbiscale {args.command}: warning: {as_flags(str(message))}", file=sys.stderr)
        else:
            show_warning(message, category, *rest)

    warnings.showwarning = show_notice
    try:
        return int(args.run(args) or 0)
    except UserError as error:
        print(f"arbiscale {args.command}: error: {as_flags(str(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"arbiscale {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = show_warning


if __name__ == "__main__":
    sys.exit(main())
