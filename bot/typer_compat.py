"""Make typer 0.7 (pinned by spaCy 3.4) work with click 8.5 (pinned by Flask/dask).

click 8.2+ changed two things typer 0.7 relies on:
- an Option given `flag_value=None` is now a flag (click uses an UNSET sentinel
  for "no flag value"), so every typer option with a value became a flag and
  boolean flags produced None;
- a required parameter with `default=None` now has the value None, so a
  missing required argument was not reported;
- `Parameter.make_metavar()` and `ParamType.get_metavar()` now take the context,
  so `--help` and usage errors crashed.

`apply()` patches typer's TyperOption / TyperArgument in place (idempotent, and
a no-op on a click without the UNSET sentinel). Import this module before
building a typer app.
"""

from __future__ import annotations

from typing import Any

import click
import click.core
import typer.core

try:
    from click._utils import UNSET
except ImportError:  # click < 8.2: typer 0.7 works as it is
    UNSET = None

_applied = False


def _context(ctx: click.Context | None) -> click.Context:
    if ctx is not None:
        return ctx
    current = click.get_current_context(silent=True)
    return current if current is not None else click.Context(click.Command("bot"))


def apply() -> None:
    """Patch typer for click 8.2+ (safe to call more than once)."""
    global _applied
    if _applied or UNSET is None:
        return
    _applied = True
    option_init = typer.core.TyperOption.__init__
    argument_init = typer.core.TyperArgument.__init__

    def __init__(self: typer.core.TyperOption, *args: Any, flag_value: Any = None, **kwargs: Any) -> None:
        if kwargs.get("required") and kwargs.get("default") is None:
            kwargs["default"] = UNSET
        option_init(self, *args, flag_value=UNSET if flag_value is None else flag_value, **kwargs)

    def argument_init_(self: typer.core.TyperArgument, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("required") and kwargs.get("default") is None:
            kwargs["default"] = UNSET
        argument_init(self, *args, **kwargs)

    def option_metavar(self: typer.core.TyperOption, ctx: click.Context | None = None) -> str:
        return click.core.Option.make_metavar(self, _context(ctx))

    def argument_metavar(self: typer.core.TyperArgument, ctx: click.Context | None = None) -> str:
        if self.metavar is not None:
            return self.metavar
        var = (self.name or "").upper()
        if not self.required:
            var = f"[{var}]"
        type_var = self.type.get_metavar(param=self, ctx=_context(ctx))
        if type_var:
            var += f":{type_var}"
        if self.nargs != 1:
            var += "..."
        return var

    typer.core.TyperOption.__init__ = __init__  # type: ignore[method-assign]
    typer.core.TyperArgument.__init__ = argument_init_  # type: ignore[method-assign]
    typer.core.TyperOption.make_metavar = option_metavar  # type: ignore[method-assign]
    typer.core.TyperArgument.make_metavar = argument_metavar  # type: ignore[method-assign]
