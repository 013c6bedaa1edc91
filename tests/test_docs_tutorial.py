"""docs/tutorial.md runs as written: its ```python blocks are executed in order in one namespace,
and what each block prints is exactly the ```text block that follows it (no such block: it
prints nothing)."""

import contextlib
import io
import re
from pathlib import Path

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def test_tutorial_runs_and_prints_what_it_shows():
    fences = FENCE.findall(TUTORIAL.read_text())
    namespace = {"__name__": "tutorial"}
    n_blocks = 0
    for k, (language, code) in enumerate(fences):
        if language != "python":
            continue
        n_blocks += 1
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, f"{TUTORIAL}, python block {n_blocks}", "exec"), namespace)
        following = fences[k + 1] if k + 1 < len(fences) else ("", "")
        shown = following[1] if following[0] == "text" else ""
        assert printed.getvalue() == shown, f"python block {n_blocks} of {TUTORIAL.name}"
    assert n_blocks >= 5

    # what the page claims in words
    assert namespace["report"].passed
    objective = namespace["solution"].history.objective.values
    assert objective[-1] < 1e-2 * objective[0]
    assert namespace["result"].status == "completed"
    assert set(namespace["result"].history.phase.values) >= {
        "start", "time_refined_start", "prolonged_start", "iterate"}
