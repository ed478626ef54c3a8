"""`proms scheduler`: the one process that runs the sweeps (web processes never do).

APScheduler 3 runs a short, declarative list of sweeps on fixed intervals, in UTC, from memory:
the outbox and the assessments are the state, so a restart loses nothing. The sweeps run one at
a time (a single worker thread, `max_instances=1`, `coalesce=True`): a sweep that overruns its
interval runs once more after it, not twice, and dispatch never races reconcile in one process.
Several scheduler processes on PostgreSQL share the work through row locks.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from proms.db import db, trouble_status, utcnow
from proms.notify.base import Sender
from proms.notify.channels import close_all, senders_for
from proms.scheduling import dispatch, sweeps

log = logging.getLogger("proms.scheduler")


@dataclass(frozen=True, slots=True)
class Sweep:
    id: str
    interval_setting: str  # the config key of its interval, in seconds
    run: Callable[[Runner, dt.datetime], str]  # returns the numbers of its log line


class Runner:
    """The sweeps of one scheduler process, each run in an app context with `now`."""

    def __init__(self, app: Flask, senders: Mapping[str, Sender] | None = None) -> None:
        self.app = app
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.senders = (
            senders if senders is not None else senders_for(app.config, app.instance_path)
        )
        # Refuse a configuration the sweeps would fail on (no https address in production).
        dispatch.Settings.from_config(app.config, self.worker)
        self.stopping = threading.Event()
        self._busy = threading.Lock()  # held while a sweep runs

    def run(self, sweep: Sweep, now: dt.datetime | None = None) -> str:
        """One sweep; its log line. A failing sweep is logged and rolled back, not fatal."""
        with self._busy, self.app.app_context():
            if self.stopping.is_set():
                return f"{sweep.id}: not run (stopping)"
            try:
                line = sweep.run(self, now or utcnow())
            except Exception as error:
                if trouble_status(error) is None:
                    log.exception("sweep %s failed", sweep.id)
                else:
                    # The database restarting or full: one line a sweep, not a traceback a
                    # second; the next run tries again (bench/soak/faults.py restarts it).
                    log.warning("sweep %s: database unavailable (%s)", sweep.id, _first_line(error))
                return f"{sweep.id}: failed"
            finally:
                _end_session()
        log.info("%s: %s", sweep.id, line)
        return f"{sweep.id}: {line}"

    def once(self, now: dt.datetime | None = None) -> list[str]:
        """Every sweep once, in order, at one `now` (`proms scheduler --once`)."""
        try:
            return [self.run(sweep, now) for sweep in SWEEPS]
        finally:
            close_all(self.senders)

    def forever(self) -> None:
        """Run the sweeps on their intervals until SIGTERM or SIGINT, then finish the message in
        hand and stop."""
        scheduler = BlockingScheduler(
            timezone=dt.UTC,
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        for sweep in SWEEPS:
            scheduler.add_job(
                self.run,
                "interval",
                args=[sweep],
                seconds=int(self.app.config[sweep.interval_setting]),
                id=sweep.id,
                name=sweep.id,
                next_run_time=dt.datetime.now(dt.UTC),
            )

        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("stopping (%s): finishing the message in hand", signal.Signals(signum).name)
            self.stopping.set()
            scheduler.shutdown(wait=False)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info("scheduler %s started: %s", self.worker, ", ".join(s.id for s in SWEEPS))
        try:
            scheduler.start()
        finally:
            self.stopping.set()
            with self._busy:  # the sweep in hand finishes its message (it sees `stopping`)
                close_all(self.senders)
            log.info("scheduler %s stopped", self.worker)


def _end_session() -> None:
    """Roll back and end the sweep's session, even on a connection the server dropped (the
    rollback fails there; the connection is retired and a second try ends the session)."""
    for _ in range(2):
        try:
            db.session.rollback()
            db.session.remove()
            return
        except Exception as error:
            if trouble_status(error) is None:
                raise
    db.session.registry.clear()


def _first_line(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error
    return f"{type(cause).__name__}: " + (str(cause).strip().splitlines() or [""])[0][:200]


# The sweeps --------------------------------------------------------------------------------------


def _dispatch(runner: Runner, now: dt.datetime) -> str:
    settings = dispatch.Settings.from_config(runner.app.config, runner.worker)
    report = dispatch.dispatch(
        db.session, runner.senders, now, settings, stop=runner.stopping.is_set
    )
    return report.line()


def _windows(_runner: Runner, now: dt.datetime) -> str:
    return _numbers(sweeps.close_windows(db.session, now))


def _reconcile(_runner: Runner, now: dt.datetime) -> str:
    return _numbers(sweeps.reconcile(db.session, now))


def _alerts(runner: Runner, now: dt.datetime) -> str:
    base_url = dispatch.Settings.from_config(runner.app.config, runner.worker).base_url
    return _numbers(
        sweeps.email_alert_mailboxes(db.session, runner.senders["email"], now, base_url)
    )


def _purge(runner: Runner, now: dt.datetime) -> str:
    keep = dt.timedelta(days=int(runner.app.config["TOKEN_PURGE_AFTER_DAYS"]))
    return _numbers(sweeps.purge_tokens(db.session, now, keep))


def _numbers(counts: Mapping[str, int]) -> str:
    return " ".join(f"{name}={value}" for name, value in counts.items())


# In the order `--once` runs them: windows close before reconcile plans, and reconcile plans
# before dispatch sends, so one run at a given `now` leaves the outbox as it should be.
SWEEPS = (
    Sweep("windows", "SWEEP_WINDOWS_SECONDS", _windows),
    Sweep("reconcile", "SWEEP_RECONCILE_SECONDS", _reconcile),
    Sweep("dispatch", "SWEEP_DISPATCH_SECONDS", _dispatch),
    Sweep("alerts", "SWEEP_ALERTS_SECONDS", _alerts),
    Sweep("purge", "SWEEP_PURGE_SECONDS", _purge),
)
