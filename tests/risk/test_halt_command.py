"""``algo halt`` and the ``risk:`` section of a run definition, through the CLI."""

from __future__ import annotations

import csv

import pytest

from algocli.config.run import RunConfig
from algocli.risk import RiskState, read_state, write_state


def test_halt_writes_the_state_and_clear_lifts_it(cli, base_config, write_yaml, tmp_path):
    cfg = write_yaml({**base_config, "risk": {"max_daily_loss": 5000}})
    state_path = tmp_path / "yaml_out" / "risk_state.json"

    done = cli("halt", cfg, "--reason", "fat finger [desk 2]")
    assert done.code == 0, done.err
    assert done.out.strip().splitlines() == [
        f"halted the paper or live run sma-hdfcbank (fat finger [desk 2]) in {state_path}: a running engine cancels "
        f"its open orders and refuses new positions; `algo halt {cfg} --clear` lifts it"]
    # no run has a journal there yet: the halt may reach nothing running, and the command says so
    assert done.err.startswith(f"warning: no paper or live run of {cfg} has a journal in ")
    state = read_state(state_path)
    assert (state.state, state.reason, state.source) == ("HALTED", "fat finger [desk 2]", "operator")
    assert state.halted_at.endswith("+05:30")

    again = cli("halt", cfg)
    assert again.code == 0 and "is already halted" in again.out and "fat finger [desk 2]" in again.out
    assert read_state(state_path).reason == "fat finger [desk 2]"  # unchanged

    cleared = cli("halt", cfg, "--clear")
    assert cleared.code == 0, cleared.err
    assert cleared.out.strip() == (f"cleared the halt of the paper or live run sma-hdfcbank (was: fat finger [desk 2]) in {state_path}; "
                                   "the run trades again")
    state = read_state(state_path)
    assert (state.state, state.reason, state.day_start_equity) == ("ACTIVE", "", None)
    assert "is not halted" in cli("halt", cfg, "--clear").out


def test_clear_keeps_the_days_loss_baseline(cli, base_config, write_yaml, tmp_path):
    cfg = write_yaml({**base_config, "risk": {"max_daily_loss": 5000}})
    state_path = tmp_path / "yaml_out" / "risk_state.json"
    write_state(state_path, RiskState(state="HALTED", reason="manual stop", source="operator", day="2024-06-10",
                                      day_start_equity=1_000_000.0, square_off_day="2024-06-10"))
    done = cli("halt", cfg, "--clear")
    assert done.code == 0, done.err
    state = read_state(state_path)
    assert (state.state, state.day, state.day_start_equity, state.square_off_day) == (
        "ACTIVE", "2024-06-10", 1_000_000.0, "2024-06-10")
    assert " ".join(done.out.split()) == (
        f"cleared the halt of the paper or live run sma-hdfcbank (was: manual stop) in {state_path}; the run trades again; the day's loss "
        "is still counted from 1,000,000.00, the equity at the start of 2024-06-10 (a clear does not renew the "
        "day's loss budget; the next trading day does)")


@pytest.mark.parametrize("journal,written,named", [
    (None, "paper", "the paper run"), (None, "live", "the live run"), (None, "backtest", "the paper or live run"),
    ('{"k":"run","run_key":"k1","name":"x"}', None, "the live run"),  # a live run still running
    ('{"k":"order","order_id":"1"}', None, "the paper run"),  # a paper run still running
])
def test_halt_names_the_mode_of_the_run_it_reaches(cli, base_config, write_yaml, tmp_path, journal, written, named):
    """Paper and live runs of one definition share its folder: a live run's journal carries its run
    key, and a finished run's run.json names its mode. A dry run keeps its own state, and is named so."""
    import json

    cfg = write_yaml({**base_config, "risk": {}})
    (tmp_path / "yaml_out").mkdir()
    if written:
        (tmp_path / "yaml_out" / "run.json").write_text(json.dumps({"mode": written}), encoding="utf-8")
    if journal:
        (tmp_path / "yaml_out" / "journal.jsonl").write_text(journal + "\n", encoding="utf-8")
    assert cli("halt", cfg).out.startswith(f"halted {named} sma-hdfcbank (halted by the operator) in "
                                           f"{tmp_path / 'yaml_out' / 'risk_state.json'}")
    dry = cli("halt", cfg, "--dry-run")
    assert dry.out.startswith(f"halted the live dry run sma-hdfcbank (halted by the operator) in "
                              f"{tmp_path / 'yaml_out' / 'dry-run' / 'risk_state.json'}")


def test_halt_reaching_no_run_names_the_one_it_meant_and_a_mistyped_output_is_refused(cli, base_config, write_yaml,
                                                                                     tmp_path):
    """A dry run keeps its own risk state: halting the live one while only a dry run runs names the
    command that halts the dry run; a mistyped --output halts nothing and creates no folder."""
    cfg = write_yaml({**base_config, "risk": {}})
    dry = tmp_path / "yaml_out" / "dry-run"
    dry.mkdir(parents=True)
    (dry / "journal.jsonl").write_text('{"k":"candle"}\n', encoding="utf-8")
    live = cli("halt", cfg)
    assert live.code == 0 and f"`algo halt {cfg} --dry-run` halts that one" in " ".join(live.err.split())
    halted_dry = cli("halt", cfg, "--dry-run")
    assert halted_dry.code == 0 and halted_dry.err == ""  # a dry run has a journal there: no warning
    assert f"`algo halt {cfg} --dry-run --clear` lifts it" in halted_dry.out
    wrong = cli("halt", cfg, "--output", tmp_path / "nope")
    assert wrong.code == 2 and wrong.err_lines == [
        f"error: --output {tmp_path / 'nope'}: no such folder; give the --output the run was started with"]
    assert not (tmp_path / "nope").exists()
    assert cli("halt", cfg, "--dry-run", "--clear").code == 0
    there = cli("halt", cfg, "--output", tmp_path / "yaml_out", "--dry-run")
    assert f"`algo halt {cfg} --dry-run --output {tmp_path / 'yaml_out'} --clear` lifts it" in there.out


def test_halt_output_help_names_every_mode_that_takes_it():
    from typer.testing import CliRunner

    from algocli.cli.main import app

    done = CliRunner().invoke(app, ["halt", "--help"], env={"COLUMNS": "300", "NO_COLOR": "1"})
    text = " ".join(done.output.replace("│", " ").split())
    assert "(`algo paper`, `algo live --dry-run` or `algo live`) was given --output" in text, text


def test_halt_uses_the_configured_state_file_or_the_output_override(cli, base_config, write_yaml, tmp_path):
    custom = tmp_path / "elsewhere" / "kill.json"
    cfg = write_yaml({**base_config, "risk": {"state_file": str(custom)}})
    assert cli("halt", cfg).code == 0
    assert read_state(custom).halted
    plain = write_yaml({**base_config, "risk": {}}, name="plain.yaml")
    (tmp_path / "over").mkdir()  # the folder a run given --output made
    assert cli("halt", plain, "--output", tmp_path / "over").code == 0
    assert read_state(tmp_path / "over" / "risk_state.json").halted
    assert not (tmp_path / "yaml_out" / "risk_state.json").exists()


def test_halt_without_a_risk_section_says_how_to_enable_it(cli, base_config, write_yaml):
    cfg = write_yaml(base_config)
    done = cli("halt", cfg)
    assert done.code == 2 and "Traceback" not in done.err
    assert len(done.err_lines) == 1
    assert done.err_lines[0].startswith(f"error: {cfg}: no risk: section") and "risk: {}" in done.err_lines[0]


def test_backtest_with_a_risk_section_records_refused_orders_in_orders_csv(cli, base_config, write_yaml, tmp_path):
    cfg = write_yaml({**base_config, "risk": {"max_position": 50}})  # the strategy buys 100 at a time
    done = cli("backtest", cfg, "--quiet", "--no-report")
    assert done.code == 0, done.err
    with open(tmp_path / "yaml_out" / "orders.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(r["status"] == "REJECTED" for r in rows)
    assert {r["reason"] for r in rows} == {
        "risk: NSE:HDFCBANK position could reach +100 units with the working orders; max_position is 50"}
    assert "order(s) were rejected (see orders.csv); first: risk: NSE:HDFCBANK position" in " ".join(done.out.split())
    assert not (tmp_path / "yaml_out" / "risk_state.json").exists()


def _risk(section) -> RunConfig:
    return RunConfig.model_validate({"name": "x", "initial_capital": 1000, "risk": section,
                                     "strategies": [{"class": "sma_crossover", "instruments": ["NSE_EQ:1"]}]})


def test_risk_times_accept_quoted_and_unquoted_yaml(write_yaml, base_config):
    import yaml

    raw = yaml.safe_load("risk:\n  entry_cutoff: 15:00\n  square_off: \"15:15\"\n")["risk"]
    assert raw["entry_cutoff"] == 900  # YAML 1.1 reads 15:00 as a base-60 number
    risk = _risk(raw).risk
    assert (risk.entry_cutoff, risk.square_off) == ("15:00", "15:15")
    assert _risk(None).risk is None


@pytest.mark.parametrize(("section", "fragment"), [
    ({"max_postion": 10}, "max_postion: unknown key; did you mean `max_position`?"),
    ({"square_off": "25:00"}, "risk.square_off"),
    ({"entry_cutoff": "3pm"}, "write it as HH:MM in IST"),
    ({"max_daily_loss": -5}, "risk.max_daily_loss"),
    ({"max_orders_per_second": 0}, "risk.max_orders_per_second"),
])
def test_risk_mistakes_are_one_line_config_errors(cli, base_config, write_yaml, section, fragment):
    cfg = write_yaml({**base_config, "risk": section})
    done = cli("backtest", cfg, "--quiet", "--no-report")
    assert done.code == 2 and "Traceback" not in done.err
    assert len(done.err_lines) == 1 and fragment in done.err_lines[0], done.err
