"""`dmxgen` command line: a thin click group; each command lives in dmxgen/commands/."""
from __future__ import annotations

import importlib
import sys

import click

from .errors import DmxError

# command name -> module in dmxgen.commands holding a click command called `command`
COMMANDS = {
    "inspect": "inspect",
    "verify": "verify",
    "export": "export",
    "bench": "bench",
    "compress": "compress",
    "report": "report",
    "shrink": "shrink",
}


class LazyGroup(click.Group):
    """Imports a command's module only when it runs, so `dmxgen --help` stays fast."""

    def list_commands(self, ctx):
        return [name for name, mod in COMMANDS.items() if importlib.util.find_spec(f"dmxgen.commands.{mod}")]

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        try:
            module = importlib.import_module(f"dmxgen.commands.{COMMANDS[name]}")
        except ModuleNotFoundError as e:
            if e.name == f"dmxgen.commands.{COMMANDS[name]}":
                return None
            raise
        return module.command

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except DmxError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            fail(str(e))
        except click.UsageError as e:  # a bad option or argument of a command: one line too, not click's three
            if ctx.obj and ctx.obj.get("debug"):
                raise
            command = f" {e.ctx.info_name}" if e.ctx is not None and e.ctx is not ctx else ""
            fail(f"{e.format_message()} (see dmxgen{command} --help)")


def fail(message: str) -> None:
    """Print the one error line every bad input gets and exit 2."""
    click.echo(f"dmxgen: error: {message}", err=True)
    sys.exit(2)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
@click.version_option(package_name="dmxgen")
@click.pass_context
def main(ctx, debug):
    """Generate integer-only C (Cortex-M) and HLS C++ from compressed models,
    checked to the bit against a numpy integer reference.

    \b
    Typical use:
      dmxgen inspect model.tflite            per-layer table
      dmxgen verify model.tflite             reference vs TFLite, to the bit
      dmxgen export model.tflite -o out/     generate C
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


if __name__ == "__main__":  # pragma: no cover
    main()
