#!/usr/bin/env python3
"""Splits a CPU profile of Petrel by stage of a message's life.

Reads `perf script -F comm,ip,sym` output (a `perf record --call-graph dwarf` profile, as
`PERF=1 PERF_CALLGRAPH=dwarf,16384 bench/delivery.sh` takes) and puts every sample in the first
stage whose marker appears anywhere in its call stack; the order of STAGES decides for stacks
that hold several (MIME building is inside the HTTP handler, so it is tested first). Kernel
time lands in the stage whose user code made the system call; a sample with no user frame that
names a stage (the scheduler switching threads, interrupts) is counted by thread.

    perf script -i perf.data -F comm,ip,sym | bench/perf_stages.py [--per-message N --cpu-seconds S]

With --per-message (messages delivered while the profile ran) and --cpu-seconds (Petrel's CPU
in that time), each stage is also given in microseconds of CPU per message.
"""
import argparse
import collections
import sys

# (stage, markers): a marker is a substring of a frame's symbol.
STAGES = [
    ("MIME build", ["petrel::build_message", "template_copies", "render_copy"]),
    ("DKIM signing", ["petrel::dkim", "sign_message", "signer_behavior"]),
    ("store: commit (WAL write, fsync)", ["sqlite_store::commit", "pg_store::commit"]),
    ("store: writes (rows, indexes)", ["sqlite_store::apply", "pg_store::apply"]),
    ("store: reads (content, pages)", ["sqlite_store::", "pg_store::", "reader_behavior"]),
    ("HTTP + JSON + validation", ["petrel::http_server", "petrel::http_api", "parse_submission",
                                  "parse_json_input", "petrel::http_request", "petrel::http_response"]),
    ("SMTP sessions", ["petrel::smtp_connection", "run_session", "start_smtp_session",
                       "prepare_smtp_data", "smtp_reply", "async_next_work"]),
    ("events, metrics, logs", ["petrel::metrics", "metric_", "event_json", "make_event",
                               "delivery_log", "spdlog"]),
    ("delivery scheduling (domain, site, egress actors)", ["domain_behavior", "site_behavior",
                                                           "egress_behavior", "fair_queue",
                                                           "domains_supervisor", "domain_state",
                                                           "site_state", "resolver"]),
    ("submission actors (tenants, signers, ingest)", ["tenant_behavior", "tenants_supervisor",
                                                       "ingest_behavior", "tenant_state",
                                                       "petrel::ask<"]),
    ("store actor mailbox", ["store_behavior"]),
    ("CAF runtime (scheduler, clock, mailboxes)", ["caf::"]),
    ("Asio runtime (reactor, strands)", ["boost::asio", "epoll_wait"]),
]


def samples(lines):
    comm, frames = None, []
    for line in lines:
        if not line.strip():
            if comm is not None:
                yield comm, frames
            comm, frames = None, []
        elif not line[0].isspace():
            comm, frames = line.strip(), []
        else:
            parts = line.strip().split(None, 1)
            frames.append(parts[1] if len(parts) > 1 else "")
    if comm is not None:
        yield comm, frames


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-message", type=float, default=0, help="messages delivered while profiled")
    ap.add_argument("--cpu-seconds", type=float, default=0, help="Petrel CPU seconds while profiled")
    args = ap.parse_args()
    counts = collections.Counter()
    total = 0
    for comm, frames in samples(sys.stdin):
        total += 1
        stage = None
        for name, markers in STAGES:
            if any(m in f for f in frames for m in markers):
                stage = name
                break
        counts[stage or f"other, thread {comm}"] += 1
    if total == 0:
        sys.exit("no samples")
    per = args.cpu_seconds * 1e6 / args.per_message if args.per_message and args.cpu_seconds else 0
    print(f"{'stage':<55} {'share':>7}" + (f" {'µs/msg':>8}" if per else ""))
    for stage, n in counts.most_common():
        share = n / total
        print(f"{stage:<55} {share * 100:6.1f}%" + (f" {share * per:8.1f}" if per else ""))
    print(f"{'all (' + str(total) + ' samples)':<55} {100:6.1f}%" + (f" {per:8.1f}" if per else ""))


if __name__ == "__main__":
    main()
