"""What the gate stage wrote for CI (gate.json, gate-summary.md, gate-junit.xml) said PASS or FAIL of the model the
run made before; once an earlier stage runs again that model is no longer the one the config makes. edgekd gate and
edgekd bench refuse the stale run folder, but a CI step reading those files would still see the old PASS: they are
rewritten to say stale (a failed check naming the stage), until the gate stage runs again and replaces them. The
run's report.md and report.html, which people read, get the same line at their top."""
from __future__ import annotations

from html import escape

from edgekd.core.fileio import write_json_atomic, write_text_atomic
from edgekd.device.ci_outputs import write_ci_outputs
from edgekd.device.gate import Check


def mark_gate_outputs_stale(layout, run_name: str, because: str) -> None:
    """Rewrite the gate's CI files as stale, where the gate stage wrote them; nothing when it never ran."""
    if not layout.gate_json.is_file() or _already_stale(layout.gate_json):  # the first stage that ran again is the cause
        return  # said once, as report.md's line is: later stages of the same rerun name no other cause
    reason = (f"stale: {because}; the model these checks judged is no longer the one the config makes: finish the run "
              "(edgekd run CONFIG --out RUN --resume) to gate the new one")
    stale = Check(run_name, "stale", False, reason)
    write_json_atomic(layout.gate_json, {"passed": False, "stale": True, "summary": f"gate: {reason}",
                                         "checks": [stale.__dict__]})
    write_ci_outputs([stale], run_name, layout.gate_junit, layout.gate_summary, step_summary=False)
    mark_reports_stale(layout.run_dir, reason)


def _already_stale(gate_json) -> bool:
    from edgekd.core.fileio import read_json

    try:
        return bool((read_json(gate_json) or {}).get("stale"))
    except Exception:  # unreadable: rewritten as stale
        return False


STALE_MD, STALE_HTML = "> **STALE**: ", '<p class="stale"><b>STALE</b>: '


def mark_reports_stale(run_dir, reason: str) -> None:
    """The line at the top of report.md and report.html (once: a second rerun says nothing more)."""
    md, page = run_dir / "report.md", run_dir / "report.html"
    if md.is_file() and not md.read_text(encoding="utf-8").startswith(STALE_MD):
        write_text_atomic(md, f"{STALE_MD}{reason}\n\n{md.read_text(encoding='utf-8')}")
    if page.is_file() and STALE_HTML not in (text := page.read_text(encoding="utf-8")) and "<body>" in text:
        write_text_atomic(page, text.replace("<body>", f"<body>{STALE_HTML}{escape(reason)}</p>", 1))
