"""Helpers for the ``algo live`` tests: the broker environment for a sandbox port, run
definitions copied from ``configs/live-<broker>.yaml``, the sandbox's order book, trade book
and positions read over each broker's own REST API, its fault switches, a request-counting
proxy, and the checks that tie ``fills.csv`` and the journal to what the broker did.

Processes come from ``paper_support`` (``sandbox``, ``Child``); ``start_algo``/``algo_in``
add a working directory so no test reads a ``.env`` from the repository. Every child is
killed in a ``finally`` and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from cli.paper_support import ALGO_EXE, INSTRUMENT, REPO_ROOT, Child, child_env, read_csv, read_journal

BROKERS = ("dhan", "upstox")
DHAN_ACCOUNT = "sandbox"  # DHAN_CLIENT_ID the sandbox prints; Upstox's account is the token
TOKEN_VARIABLE = {"dhan": "DHAN_ACCESS_TOKEN", "upstox": "UPSTOX_ACCESS_TOKEN"}
LIVE_ARTIFACTS = ("trades.csv", "orders.csv", "fills.csv", "equity_curve.csv", "results.csv", "report.html",
                  "run.json", "config.resolved.yaml", "journal.jsonl")


# --- environment and run definitions -------------------------------------------------------


def broker_env(broker: str, port: int, token: str = "sandbox", client_id: str = DHAN_ACCOUNT) -> dict[str, str]:
    """The variables ``algo sandbox`` prints for ``broker``, built from the port."""
    host = f"127.0.0.1:{port}"
    if broker == "dhan":
        return {"DHAN_FEED_URL": f"ws://{host}/dhan/feed", "DHAN_API_BASE_URL": f"http://{host}/v2",
                "DHAN_ORDER_UPDATE_URL": f"ws://{host}/dhan/orders", "DHAN_CLIENT_ID": client_id,
                "DHAN_ACCESS_TOKEN": token}
    if broker == "upstox":
        return {"UPSTOX_API_BASE_URL": f"http://{host}", "UPSTOX_ORDER_BASE_URL": f"http://{host}",
                "UPSTOX_ACCESS_TOKEN": token}
    raise ValueError(broker)


def live_env(broker: str, port: int, token: str = "sandbox", **extra: str) -> dict[str, str]:
    """``child_env`` (no inherited DHAN_/UPSTOX_/crash variables) plus the broker's variables."""
    return child_env(**broker_env(broker, port, token), **extra)


def write_live_yaml(path: Path, broker: str, out_dir: Path, **changes) -> Path:
    """A copy of ``configs/live-<broker>.yaml`` writing to ``out_dir`` (top-level keys replaced by ``changes``)."""
    cfg = yaml.safe_load((REPO_ROOT / "configs" / f"live-{broker}.yaml").read_text(encoding="utf-8"))
    for entry in cfg["strategies"]:  # these sandboxes serve no instrument list: the id (names: test_live_names.py)
        entry["instruments"] = ["NSE_EQ:2885" if i == "NSE:RELIANCE" else i for i in entry["instruments"]]
    cfg["output"] = {"dir": str(out_dir)}
    cfg.update(changes)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


# --- processes with a working directory ------------------------------------------------------


def start_algo(args: list, logs: Path, label: str, env: dict[str, str], cwd: Path) -> Child:
    """``algo *args`` in ``cwd``; stdout and stderr go to ``logs/label.N.out|err``."""
    logs.mkdir(parents=True, exist_ok=True)
    n = 0
    while (logs / f"{label}.{n}.out").exists():
        n += 1
    out_path, err_path = logs / f"{label}.{n}.out", logs / f"{label}.{n}.err"
    out_fh, err_fh = open(out_path, "wb"), open(err_path, "wb")
    try:
        proc = subprocess.Popen([str(ALGO_EXE), *map(str, args)], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=out_fh, stderr=err_fh)
    except BaseException:
        out_fh.close()
        err_fh.close()
        raise
    return Child(proc, out_path, err_path, [out_fh, err_fh])


@contextlib.contextmanager
def algo_running(args: list, logs: Path, label: str, env: dict[str, str], cwd: Path) -> Iterator[Child]:
    child = start_algo(args, logs, label, env, cwd)
    try:
        yield child
    finally:
        child.kill()


def algo_in(args: list, env: dict[str, str], cwd: Path, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run ``algo *args`` in ``cwd`` to completion (bounded)."""
    return subprocess.run([str(ALGO_EXE), *map(str, args)], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, check=False)


# --- the sandbox as the broker sees it ----------------------------------------------------------


@dataclass(frozen=True)
class BookOrder:
    order_id: str
    client_id: str  # Dhan correlationId / Upstox tag ("" when none)
    side: str
    quantity: int
    filled: int
    status: str


@dataclass(frozen=True)
class BookTrade:
    trade_id: str
    order_id: str
    side: str
    quantity: int
    price: float


class BrokerRest:
    """One account at the sandbox, read and written over the broker's own REST API."""

    def __init__(self, broker: str, port: int, token: str = "sandbox", client_id: str = DHAN_ACCOUNT) -> None:
        self.broker, self.port, self.token, self.client_id = broker, port, token, client_id
        self.base = f"http://127.0.0.1:{port}"

    def _call(self, method: str, path: str, body: dict | None = None, auth: bool = True):
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth and self.broker == "dhan":
            headers.update({"access-token": self.token, "client-id": self.client_id})
        elif auth:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            payload = json.loads(resp.read())
        if self.broker == "upstox" and isinstance(payload, dict) and "data" in payload:
            return payload["data"]
        return payload

    def orders(self) -> list[BookOrder]:
        if self.broker == "dhan":
            return [BookOrder(o["orderId"], o.get("correlationId") or "", o["transactionType"], int(o["quantity"]),
                              int(o["filledQty"]), o["orderStatus"]) for o in self._call("GET", "/v2/orders")]
        return [BookOrder(o["order_id"], o.get("tag") or "", o["transaction_type"], int(o["quantity"]),
                          int(o["filled_quantity"]), o["status"])
                for o in self._call("GET", "/v2/order/retrieve-all")]

    def trades(self) -> list[BookTrade]:
        if self.broker == "dhan":
            return [BookTrade(t["exchangeTradeId"], t["orderId"], t["transactionType"], int(t["tradedQuantity"]),
                              float(t["tradedPrice"])) for t in self._call("GET", "/v2/trades")]
        return [BookTrade(t["trade_id"], t["order_id"], t["transaction_type"], int(t["quantity"]),
                          float(t["average_price"]))
                for t in self._call("GET", "/v2/order/trades/get-trades-for-day")]

    def net_position(self, instrument: str = INSTRUMENT) -> int:
        segment, _, security = instrument.partition(":")
        if self.broker == "dhan":
            rows = self._call("GET", "/v2/positions")
            return sum(int(p["netQty"]) for p in rows
                       if (p["exchangeSegment"], str(p["securityId"])) == (segment, security))
        rows = self._call("GET", "/v2/portfolio/short-term-positions")
        return sum(int(p["quantity"]) for p in rows if p["instrument_token"] == f"{segment}|{security}")

    def place(self, side: str, quantity: int, instrument: str = INSTRUMENT) -> str:
        """A MARKET order typed in by hand (no client id); returns the broker's order id."""
        segment, _, security = instrument.partition(":")
        if self.broker == "dhan":
            answer = self._call("POST", "/v2/orders", {
                "dhanClientId": self.client_id, "transactionType": side, "exchangeSegment": segment,
                "productType": "INTRADAY", "orderType": "MARKET", "validity": "DAY", "securityId": security,
                "quantity": quantity, "price": 0})
            return answer["orderId"]
        answer = self._call("POST", "/v2/order/place", {
            "quantity": quantity, "product": "I", "validity": "DAY", "price": 0, "instrument_token":
            f"{segment}|{security}", "order_type": "MARKET", "transaction_type": side})
        return answer["order_id"]

    def set_faults(self, **faults) -> dict:
        path = "/sandbox/dhan/faults" if self.broker == "dhan" else "/sandbox/faults/upstox"
        if self.broker == "upstox" and "hang_seconds" in faults:
            faults["hang_s"] = faults.pop("hang_seconds")
        return self._call("POST", path, faults)

    def readable(self) -> bool:
        """True once the REST API answers this account."""
        try:
            self.orders()
            return True
        except (OSError, ValueError, urllib.error.HTTPError):
            return False


# --- a proxy that counts REST calls ---------------------------------------------------------------


class CountingProxy:
    """A plain HTTP reverse proxy on 127.0.0.1 in front of the sandbox that counts requests."""

    def __init__(self, upstream_port: int) -> None:
        self.calls: list[tuple[str, str, int]] = []  # (method, path, status)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    proxy.calls.append((self.command, self.path.split("?")[0], resp.status))
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = _forward

            def log_message(self, *args) -> None:  # keep the test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


# --- what our files say, against what the broker did ------------------------------------------


def journal_so_far(out_dir: Path) -> list[dict]:
    """The journal of a run that may not have written one yet ([] then)."""
    path = out_dir / "journal.jsonl"
    return read_journal(path) if path.exists() else []


def journal_client_ids(out_dir: Path) -> dict[str, str]:
    """Our order id -> the client id journaled for it."""
    return {r["order_id"]: r["client_id"] for r in read_journal(out_dir / "journal.jsonl") if r["k"] == "client_id"}


def journal_baseline(out_dir: Path) -> dict[str, int]:
    for r in read_journal(out_dir / "journal.jsonl"):
        if r["k"] == "baseline":
            return r["positions"]
    raise AssertionError("no baseline record in the journal: the run never reconciled")


def signed(side: str, quantity: int) -> int:
    return quantity if side == "BUY" else -quantity


def check_against_broker(out_dir: Path, rest: BrokerRest) -> dict:
    """The money invariants of a live run against the sandbox; returns what it compared.

    * fills.csv has no duplicate fill id;
    * at most one broker order per client id of ours (the journal's ``client_id`` records);
    * every fill in fills.csv is a trade of one of our broker orders, by trade id, side,
      quantity and price, and every broker trade of our orders is in fills.csv exactly once;
      a fill of an order tagged ``auto-squareoff`` is a trade of one of the broker's own orders
      (no client id: its INTRADAY auto square-off) instead;
    * the broker's net position is the journal's baseline plus the sum of our fills;
    * no order is left UNKNOWN.
    """
    fills = read_csv(out_dir / "fills.csv")
    orders = read_csv(out_dir / "orders.csv")
    ids = [f["fill_id"] for f in fills]
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    assert not dupes, f"duplicate fill ids in fills.csv: {dupes}"

    ours = journal_client_ids(out_dir)
    book = rest.orders()
    per_client = Counter(o.client_id for o in book if o.client_id in ours.values())
    assert all(n == 1 for n in per_client.values()), f"more than one broker order per client id: {per_client}"
    broker_ids = {o.order_id: o for o in book if o.client_id in ours.values()}
    by_client = {o.client_id: o for o in broker_ids.values()}

    trades = [t for t in rest.trades() if t.order_id in broker_ids]
    by_fill_id = {f"T:{t.trade_id}": t for t in trades}
    brokers_own = {o.order_id for o in book if not o.client_id}  # the broker's INTRADAY auto square-off
    squared = {f"T:{t.trade_id}": t for t in rest.trades() if t.order_id in brokers_own}
    auto = {o["order_id"] for o in orders if o["tag"] == "auto-squareoff"}
    for f in fills:
        if f["order_id"] in auto:
            trade = squared.get(f["fill_id"])
            assert trade is not None, f"auto-squareoff fill {f['fill_id']} is not a trade of the broker's own orders"
            assert (f["side"], int(f["quantity"]), float(f["price"])) == (trade.side, trade.quantity, trade.price)
            continue
        trade = by_fill_id.get(f["fill_id"])
        assert trade is not None, f"fill {f['fill_id']} is not a trade of our orders in the broker's trade book"
        assert (f["side"], int(f["quantity"])) == (trade.side, trade.quantity), (f, trade)
        assert float(f["price"]) == trade.price, (f, trade)
        assert by_client[ours[f["order_id"]]].order_id == trade.order_id, (f, trade)  # booked on the right order
    missing = sorted(set(by_fill_id) - set(ids))
    assert not missing, f"broker trades of our orders missing from fills.csv: {missing}"

    baseline = journal_baseline(out_dir).get(INSTRUMENT, 0)
    ours_net = baseline + sum(signed(f["side"], int(f["quantity"])) for f in fills if f["instrument"] == INSTRUMENT)
    theirs = rest.net_position(INSTRUMENT)
    assert theirs == ours_net, f"broker position {theirs} != baseline {baseline} + fills.csv {ours_net - baseline}"

    unknown = [o["order_id"] for o in orders if o["status"] == "UNKNOWN"]
    assert not unknown, f"orders left UNKNOWN: {unknown}"
    return {"fills": fills, "orders": orders, "book": book, "ours": ours, "broker_orders": broker_ids,
            "trades": trades, "position": theirs}
