"""Progress in a log file: a line with ETA about every LINE_EVERY_S seconds, never silence."""

from ddbench import term


def test_progress_prints_eta_lines_when_stderr_is_not_a_terminal(monkeypatch, capsys):
    monkeypatch.delenv("DDBENCH_QUIET", raising=False)
    monkeypatch.delenv("DDBENCH_PROGRESS", raising=False)
    monkeypatch.setattr(term, "LINE_EVERY_S", 0.0)
    monkeypatch.setattr(term, "_console", None)
    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr(term.time, "time", lambda: float(next(clock)))
    with term.progress(4, "distill") as bar:
        bar.advance(1, loss=0.5)
        bar.advance(1)
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if "distill:" in l]
    assert lines[0].strip().startswith("distill: 1/4 (25%)") and "eta" in lines[0] and "loss=0.5" in lines[0]
    assert "distill: 2/4 (50%)" in lines[1]
    # half done: the time to go equals the time spent
    elapsed = lines[1].split("elapsed ")[1].split(",")[0]
    assert f"eta {elapsed}," in lines[1] and elapsed != "0:00"


def test_quiet_prints_nothing(monkeypatch, capsys):
    monkeypatch.setenv("DDBENCH_QUIET", "1")
    monkeypatch.setattr(term, "LINE_EVERY_S", 0.0)
    with term.progress(2, "x") as bar:
        bar.advance()
    assert capsys.readouterr().err == ""
