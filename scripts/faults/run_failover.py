#!/usr/bin/env python3
"""Failover: a primary and a synchronous streaming standby (Debian's PostgreSQL), Tally spending on
the primary; the primary crashes (`pg_ctl -m immediate`), the standby is promoted and Tally is
restarted on it (a new DATABASE_URL). Every spend Tally acknowledged must be on the new primary,
none twice, and `tally verify` must be clean there.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from cluster import Cluster, Tally, check, failures, lost_and_doubled, organisations_with_credits, replays_that_differ  # noqa: E402
from load import Load  # noqa: E402



def main():
    primary = Cluster("primary", settings="wal_level = replica\nmax_wal_senders = 5\nsynchronous_commit = on\n"
                                          "synchronous_standby_names = 'standby1'\nhot_standby = on")
    primary.init()
    primary.start()
    standby = Cluster("standby")
    tallies = []
    try:
        # A base backup of the primary, configured as its synchronous standby.
        standby.pg("pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "tally", "-D", standby.data,
                   "-X", "stream", "-R")
        with open(os.path.join(standby.data, "postgresql.auto.conf"), "a") as conf:
            conf.write(f"\nprimary_conninfo = 'host=127.0.0.1 port={primary.port} user=tally application_name=standby1'\n")
        standby.configure("synchronous_standby_names = ''")
        standby.start()
        deadline = time.time() + 30
        while time.time() < deadline:
            if primary.sql("SELECT sync_state FROM pg_stat_replication") == ["sync"]:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("the standby never became synchronous")
        print("primary and synchronous standby up", flush=True)

        tally = Tally(primary.url)
        tallies.append(tally)
        tally.start()
        key = tally.platform_key
        orgs = organisations_with_credits(tally, 6, "failover")

        load = Load(tally.port, key, orgs)
        load.start()
        time.sleep(3)
        crashed = time.time()
        primary.stop("immediate")
        time.sleep(1)
        standby.pg("pg_ctl", "promote", "-D", standby.data, "-w", "-t", "60")
        check(tally.alive(), "tally survives the primary's crash")
        code, _ = tally.terminate()
        check(code == 0, f"tally exits 0 on SIGTERM with its primary gone (got {code})")
        load.stop()

        moved = Tally(standby.url, log_path=tally.log_path)
        tallies.append(moved)
        moved.start()
        load.port = moved.port
        load.mark_recovery()
        unsettled = load.settle()
        back = (min(load.first_success_after.values()) - crashed) if load.first_success_after else None
        check(not unsettled, f"{len(unsettled)} spend(s) never acknowledged after the failover")

        acked, lost, doubled = lost_and_doubled(standby, load.spends)
        check(not lost, f"{len(lost)} acknowledged spend(s) lost in the failover")
        check(doubled == 0, f"{doubled} spend(s) stored twice")
        replay_bad = replays_that_differ(moved.port, key, [s for s in acked if s.failed_attempts] + acked[-100:])
        check(replay_bad == 0, f"{replay_bad} replay(s) differ after the failover")
        result, _ = moved.command("verify")
        check(result.returncode == 0, f"tally verify is clean on the new primary (rc {result.returncode})")
        print(f"\nfailover: acknowledged {len(acked)} (before the crash: "
              f"{sum(1 for s in acked if s.answer and s.failed_attempts == 0)}), lost {len(lost)}, doubled {doubled}; "
              f"spending again {back:.1f} s after the primary crashed" if back else "")
    finally:
        for tally in tallies:
            tally.kill()
        standby.remove()
        primary.remove()
    if failures:
        print(f"{len(failures)} failover check(s) failed")
        sys.exit(1)
    print("all failover checks passed")


if __name__ == "__main__":
    main()
