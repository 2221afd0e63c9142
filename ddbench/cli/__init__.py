"""The ``ddbench`` command. One module per command; heavy imports stay inside commands."""

from __future__ import annotations

import os
import sys

import click

from .. import __version__
from ..errors import DDBenchError


class CleanError(click.ClickException):
    """A one-line error, exit code 2, no traceback."""

    exit_code = 2


def _show_traceback(text: str) -> None:
    if text and os.environ.get("DDBENCH_TRACEBACK", "").lower() in ("1", "true", "yes"):
        click.echo(text.rstrip("\n"), err=True)


class Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DDBenchError as e:
            _show_traceback(getattr(e, "traceback", ""))
            raise CleanError(str(e)) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as e:
            from ..plugins import blame

            err = blame(e)
            if err is None:  # a bug in ddbench itself: the traceback is the report
                raise
            _show_traceback(err.traceback)
            raise CleanError(str(err)) from None


@click.group(cls=Group)
@click.version_option(__version__, prog_name="ddbench")
def main() -> None:
    """ddbench: an open benchmark suite for dataset distillation.

    Run a method on a task (`ddbench run`) or a whole grid of runs (`ddbench
    grid`), list what is installed (`ddbench ls`,
    `ddbench plugins`), look at recorded runs (`ddbench runs`, `ddbench show`) and
    build the leaderboard (`ddbench leaderboard build`).
    """


from . import grid as _grid  # noqa: E402
from . import leaderboard as _leaderboard  # noqa: E402
from . import ls as _ls  # noqa: E402
from . import plugins as _plugins  # noqa: E402
from . import run as _run  # noqa: E402
from . import runs as _runs  # noqa: E402

main.add_command(_run.run)
main.add_command(_grid.grid)
main.add_command(_ls.ls)
main.add_command(_plugins.plugins_cmd)
main.add_command(_runs.runs)
main.add_command(_runs.show)
main.add_command(_leaderboard.leaderboard)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
