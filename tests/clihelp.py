"""Shared by the CLI tests: a bad input must give exactly one clean line and exit code 2."""

from click.testing import CliRunner

from ddbench.cli import main


def one_line(args, *needles, env=None) -> str:
    """Run ``ddbench ARGS``; assert exit code 2, no traceback, one line holding every needle."""
    res = CliRunner().invoke(main, args, env=env)
    err = res.stderr.strip()
    assert res.exit_code == 2, (res.output, res.exception)
    assert "Traceback" not in res.output and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err
