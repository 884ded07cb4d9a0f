"""How long a card login takes end to end, and where the time goes.

    uv run python bench/card_login.py [--runs N] [--json PATH]

It starts its own embedded platform with cards (nats-server, every service as its own process on
SQLite, card-gateway, a pcscd with the vpcd reader, the development CA), issues a legal-person
card with `swctl card issue`, puts it in the reader with `swctl card insert`, registers its
administrator with `swctl register card`, then measures:

- `swctl login --card --pin-stdin`: the whole command, as a user or script runs it: a new process
  (Python start-up and imports), the NATS connection, the three requests, the saved session;
- `swctl whoami`: the same process cost around one plain request, to tell swctl's start-up from
  the card work;
- the three requests of a card login over one warm NATS connection: CARD_CHALLENGE (accounts),
  SIGN_CHALLENGE (card-gateway: PIN VERIFY and the card's SM2 signature, through pyscard, pcscd,
  vpcd and the virtual card), LOGIN_CARD (accounts: challenge, CRL, chain, signature, card data,
  binding, session).

Each figure is the median (and p90) of `--runs` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from singlewindow.contracts import accounts, card_gateway
from singlewindow.contracts.wire import decode_reply
from singlewindow.swctl.platform import Platform

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.identifiers import make_account, make_uscc  # noqa: E402
from tests.support.platform import connect, running_platform  # noqa: E402
from tests.support.swctl import Swctl  # noqa: E402

PIN = "88888888"


def summary(samples: list[float]) -> dict[str, float]:
    """Median and p90 in milliseconds."""
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p90_ms": round(p90 * 1000, 1),
        "runs": len(ordered),
    }


def timed(swctl: Swctl, *args: str, stdin: str | None = None) -> float:
    started = time.perf_counter()
    result = swctl(*args, stdin=stdin)
    elapsed = time.perf_counter() - started
    if result.code != 0:
        raise RuntimeError(f"swctl {' '.join(args)} failed: {result.stderr}")
    return elapsed


async def steps(platform: Platform, runs: int) -> dict[str, list[float]]:
    """The three requests of a card login, timed one by one: the card's as the workstation,
    the others as the portal, as swctl sends them."""
    portal, workstation = await connect(platform, "portal"), await connect(platform, "workstation")
    times: dict[str, list[float]] = {"challenge": [], "sign": [], "login": [], "total": []}

    async def call(subject: str, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
        nc = workstation if subject == card_gateway.SIGN_CHALLENGE.subject else portal
        started = time.perf_counter()
        reply = await nc.request(subject, json.dumps(body).encode(), timeout=30)
        elapsed = time.perf_counter() - started
        decode_reply(reply.data, None)  # raises on an error reply
        result: dict[str, Any] = json.loads(reply.data)["result"]
        return result, elapsed

    try:
        for run in range(runs + 1):
            challenge, t_challenge = await call(accounts.CARD_CHALLENGE.subject, {})
            signed, t_sign = await call(
                card_gateway.SIGN_CHALLENGE.subject,
                {"pin": PIN, "challenge": challenge["challenge"]},
            )
            proof = {
                "challenge_id": challenge["challenge_id"],
                "certificate_pem": signed["certificate_pem"],
                "card": signed["card"],
                "signature": signed["signature"],
            }
            _session, t_login = await call(accounts.LOGIN_CARD.subject, proof)
            if run == 0:
                continue  # warm-up
            times["challenge"].append(t_challenge)
            times["sign"].append(t_sign)
            times["login"].append(t_login)
            times["total"].append(t_challenge + t_sign + t_login)
    finally:
        await portal.close()
        await workstation.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sw-bench-card-") as scratch:
        data_dir = Path(scratch) / "platform"
        with running_platform("sqlite", data_dir, with_cards=True) as platform:
            if platform.pcscd is None:
                sys.exit(f"pcscd with the vpcd reader is needed: {platform.pcscd_problem}")
            swctl = Swctl(platform.config.nats_url, Path(scratch) / "swctl", data_dir)
            where = ["--data-dir", str(data_dir)]
            issued = swctl(
                "card", "issue", *where, "--type", "legal-person", "--uscc", make_uscc(),
                "--enterprise-name", "重庆某某贸易有限公司", "--holder-name", "张三",
                "--holder-id", "11010519491231002X", "--json",
            )  # fmt: skip
            number = issued.json()["card_number"]
            port = str(platform.pcscd.port_of(platform.pcscd.readers[0]))
            try:
                inserted = swctl("card", "insert", *where, number, "--reader-port", port)
                if inserted.code != 0:
                    sys.exit(inserted.stderr)
                admin = {
                    "admin": {
                        "account": make_account(), "name": "李四", "id_type": "resident_id",
                        "id_number": "11010519491231002X", "mobile": "13900000001",
                        "password": "Chongqing-Trade-2026",
                    }
                }  # fmt: skip
                admin_file = Path(scratch) / "admin.json"
                admin_file.write_text(json.dumps(admin, ensure_ascii=False))
                timed(
                    swctl, "register", "card", "--file", str(admin_file), "--pin-stdin",
                    stdin=PIN + "\n",
                )  # fmt: skip
                login = ["login", "--card", "--pin-stdin"]
                timed(swctl, *login, stdin=PIN + "\n")
                timed(swctl, "whoami")
                command = [timed(swctl, *login, stdin=PIN + "\n") for _ in range(args.runs)]
                whoami = [timed(swctl, "whoami") for _ in range(args.runs)]
                requests = asyncio.run(steps(platform, args.runs))
            finally:
                swctl("card", "remove", *where, "--reader-port", port)

    figures = {
        "swctl login --card (whole command)": summary(command),
        "swctl whoami (process + one request)": summary(whoami),
        "requests: total": summary(requests["total"]),
        "requests: CARD_CHALLENGE": summary(requests["challenge"]),
        "requests: SIGN_CHALLENGE (card-gateway, card)": summary(requests["sign"]),
        "requests: LOGIN_CARD (accounts checks, session)": summary(requests["login"]),
    }
    width = max(map(len, figures))
    for name, figure in figures.items():
        print(
            f"{name:<{width}}  median {figure['median_ms']:>7.1f} ms  p90 {figure['p90_ms']:>7.1f} ms"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
