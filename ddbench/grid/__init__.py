"""``ddbench grid``: a benchmark table (methods × tasks × sources × budgets × seeds) as
one command, run on this machine (a process pool) or on a Ray cluster.

- :mod:`.spec` reads the grid (a TOML file or command-line flags), expands and validates it;
- :mod:`.driver` orders the work, saves the records, shows progress and the summary;
- :mod:`.executors` starts units in this process, in a local pool, or as Ray tasks;
- :mod:`.worker` is what a worker does with one unit.
"""

from .driver import Outcome, execute, plan, print_summary
from .spec import Block, Grid, GridRun, block_from_flags, expand, load_file, mark_done

__all__ = ["Block", "Grid", "GridRun", "Outcome", "block_from_flags", "execute", "expand", "load_file",
           "mark_done", "plan", "print_summary"]
