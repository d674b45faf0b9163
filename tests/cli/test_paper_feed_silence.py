"""``algo paper --no-dashboard`` against ``algo sandbox --silence-after N``: the replay's feed goes
silent with its socket open; the watchdog reconnects it whatever the wall clock's market hours
(the replay has its own), and each reconnect is a warning line on stderr, dashboard or not."""

from __future__ import annotations

import re

import yaml

from cli.paper_support import running, sandbox, wait_for, write_one_day, write_paper_yaml


def test_a_silent_replay_is_reconnected_and_said_on_stderr_without_the_dashboard(tmp_path):
    data = tmp_path / "data"
    write_one_day(data)
    with sandbox(data, tmp_path / "logs", speed=600, extra=["--silence-after", "40"]) as box:
        cfg = write_paper_yaml(tmp_path / "paper.yaml", port=box.port, out_dir=tmp_path / "out")
        doc = yaml.safe_load(cfg.read_text(encoding="utf-8"))
        doc["data"]["silence_s"] = 1.0
        cfg.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        with running(["paper", cfg, "--no-dashboard", "--no-report"], tmp_path / "logs", "paper") as paper:
            wait_for(lambda: "reconnect" in paper.err, 15, "a reconnect line on stderr", child=paper)
            code = paper.interrupt()
    assert code == 0, paper.err
    line = next(x for x in paper.err_lines if "reconnect" in x)
    assert re.fullmatch(r"feed sandbox \(dhan\): no data for 1s during market hours although the socket was open; "
                        r"reconnecting \(1 reconnect\(s\) so far\)", line), line
