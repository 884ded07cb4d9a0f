#!/usr/bin/env bash
# pcscd with the vsmartcard virtual reader (vpcd), for the virtual E-Port card.
#
#   scripts/pcscd-vpcd.sh start|stop|status [RUN_DIR]
#
# start   starts `pcscd --foreground` in its own session, its log in RUN_DIR/pcscd.log and its
#         pid in RUN_DIR/pcscd.pid, then waits until the vpcd reader is listed. Idempotent: a
#         pcscd that is already running is reused (and left alone by stop).
# stop    stops the pcscd this RUN_DIR started (TERM, then KILL after the timeout).
# status  says whether pcscd runs, who started it, and lists the readers; exit 3 if not running.
#
# RUN_DIR defaults to $PCSCD_VPCD_DIR or .run/pcscd in the repository. Every wait is bounded by
# $PCSCD_VPCD_TIMEOUT seconds (default 10). Readers are listed with pyscard through
# $PCSCD_VPCD_PYTHON (default: the repository's .venv python); without pyscard the check falls
# back to the vpcd port being listened on.
#
# Debian's vsmartcard-vpcd configures one reader in /etc/reader.conf.d/vpcd (DEVICENAME
# /dev/null:0x8C7B); its driver serves two slots, "Virtual PCD 00 00" where a virtual card
# connects on TCP port 35963 and "Virtual PCD 00 01" on 35964.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
COMMAND=${1:-}
RUN_DIR=${2:-${PCSCD_VPCD_DIR:-$ROOT/.run/pcscd}}
TIMEOUT=${PCSCD_VPCD_TIMEOUT:-10}
PYTHON=${PCSCD_VPCD_PYTHON:-$ROOT/.venv/bin/python}
SYSTEM_PID_FILE=/run/pcscd/pcscd.pid
VPCD_CONF=/etc/reader.conf.d/vpcd
VPCD_PORT=35963
READER_PREFIX="Virtual PCD"

say() { printf 'pcscd-vpcd: %s\n' "$*"; }
die() { printf 'pcscd-vpcd: %s\n' "$*" >&2; exit 1; }

is_pcscd() { # PID: true if PID is a live (not zombie) pcscd
    local stat
    [[ -n ${1:-} ]] && stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    [[ $stat == "$1 (pcscd) "* && $stat != "$1 (pcscd) Z"* ]]
}

read_pid() { { tr -dc '0-9' <"$1"; } 2>/dev/null || true; } # pcscd ends its pid file with a NUL

running_pid() { # the pid of the running pcscd, if any
    local pid
    pid=$(read_pid "$SYSTEM_PID_FILE")
    if is_pcscd "$pid"; then echo "$pid"; return; fi
    pid=$(read_pid "$RUN_DIR/pcscd.pid")
    if is_pcscd "$pid"; then echo "$pid"; fi
}

our_pid() { # the pid of the pcscd this RUN_DIR started, if it still runs
    local pid
    pid=$(read_pid "$RUN_DIR/pcscd.pid")
    if is_pcscd "$pid"; then echo "$pid"; fi
}

list_readers() { # prints reader names; fails if they cannot be listed
    if [[ -x $PYTHON ]] && "$PYTHON" -c 'import smartcard' 2>/dev/null; then
        "$PYTHON" - <<'EOF'
from smartcard import scard
hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
if hresult != scard.SCARD_S_SUCCESS:
    raise SystemExit(1)
hresult, readers = scard.SCardListReaders(context, [])
scard.SCardReleaseContext(context)
print("\n".join(readers if hresult == scard.SCARD_S_SUCCESS else []))
EOF
    elif ss -Hltn "sport = :$VPCD_PORT" 2>/dev/null | grep -q .; then
        echo "$READER_PREFIX (port $VPCD_PORT listening; pyscard not available to list names)"
    else
        return 1
    fi
}

reader_listed() { list_readers 2>/dev/null | grep -q "^$READER_PREFIX"; }

wait_for_reader() { # PID: waits until the vpcd reader is listed, failing if PID dies
    local deadline=$((SECONDS + TIMEOUT))
    until reader_listed; do
        if [[ -n ${1:-} ]] && ! is_pcscd "$1"; then
            tail -n 20 "$RUN_DIR/pcscd.log" >&2 2>/dev/null || true
            die "pcscd exited during startup (log: $RUN_DIR/pcscd.log)"
        fi
        if ((SECONDS >= deadline)); then
            die "no '$READER_PREFIX' reader after ${TIMEOUT}s (log: $RUN_DIR/pcscd.log)"
        fi
        sleep 0.1
    done
}

start() {
    command -v pcscd >/dev/null || die "pcscd is not installed (apt-get install pcscd)"
    [[ -f $VPCD_CONF ]] || die "$VPCD_CONF is missing (apt-get install vsmartcard-vpcd)"
    local pid
    pid=$(running_pid)
    if [[ -n $pid ]]; then
        if [[ $pid == "$(our_pid)" ]]; then
            say "pcscd already running (pid $pid, started here; log $RUN_DIR/pcscd.log)"
        else
            say "pcscd already running (pid $pid, not started here: stop will leave it)"
        fi
        wait_for_reader "$pid"
        return
    fi
    mkdir -p "$RUN_DIR"
    # Its own session, so a Ctrl-C in the starting terminal does not reach it; output to a
    # file, never to a pipe nobody reads. --info logs readers and cards, never APDUs (a PIN).
    setsid pcscd --foreground --info >>"$RUN_DIR/pcscd.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$RUN_DIR/pcscd.pid"
    wait_for_reader "$pid"
    say "pcscd started (pid $pid, log $RUN_DIR/pcscd.log)"
}

stop() {
    local pid deadline
    pid=$(our_pid)
    if [[ -z $pid ]]; then
        rm -f "$RUN_DIR/pcscd.pid"
        local other
        other=$(running_pid)
        if [[ -n $other ]]; then
            say "pcscd (pid $other) was not started from $RUN_DIR; leaving it running"
        else
            say "pcscd is not running"
        fi
        return
    fi
    kill -TERM "$pid"
    deadline=$((SECONDS + TIMEOUT))
    while is_pcscd "$pid"; do
        if ((SECONDS >= deadline)); then
            say "pcscd (pid $pid) ignored TERM for ${TIMEOUT}s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    rm -f "$RUN_DIR/pcscd.pid"
    say "pcscd stopped (pid $pid)"
}

status() {
    local pid
    pid=$(running_pid)
    if [[ -z $pid ]]; then
        say "pcscd is not running"
        exit 3
    fi
    if [[ $pid == "$(our_pid)" ]]; then
        say "pcscd running (pid $pid, started here; log $RUN_DIR/pcscd.log)"
    else
        say "pcscd running (pid $pid, not started from $RUN_DIR)"
    fi
    local readers
    readers=$(list_readers 2>/dev/null || true)
    if [[ -z $readers ]]; then
        say "no readers listed"
    else
        while IFS= read -r reader; do say "reader: $reader"; done <<<"$readers"
    fi
    grep -q "^$READER_PREFIX" <<<"$readers" || exit 3
}

case $COMMAND in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) die "usage: $0 start|stop|status [RUN_DIR]" ;;
esac
