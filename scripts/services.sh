#!/usr/bin/env bash
# Local MariaDB, FerretDB (SQLite backend) and Mailpit (catches the portal's mail)
# for development and tests.
#   scripts/services.sh start|stop|status
# Data lives in $PORTAL_DATA_DIR (default .data/, git-ignored). Both listen on
# 127.0.0.1 only: MariaDB on $PORTAL_MYSQL_PORT (3307), FerretDB on $PORTAL_MONGO_PORT (27018).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

D="$PORTAL_DATA_DIR"
MARIADB_DIR="$D/mariadb"
FERRET_DIR="$D/ferretdb"
MARIADBD="$(command -v mariadbd || echo /usr/sbin/mariadbd)"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
mysql_root() { mariadb --no-defaults --protocol=tcp -h127.0.0.1 -P"$PORTAL_MYSQL_PORT" -uroot "$@"; }

wait_for() { # name port pidfile logfile
  local name="$1" port="$2" pidfile="$3" logfile="$4"
  for _ in $(seq 1 120); do
    port_open "$port" && return 0
    if ! pid_alive "$pidfile"; then break; fi
    sleep 0.5
  done
  printf '\033[31merror:\033[0m %s did not start; last lines of %s:\n' "$name" "$logfile" >&2
  tail -n 25 "$logfile" >&2 || true
  exit 1
}

start_mariadb() {
  if pid_alive "$D/mariadb.pid" && port_open "$PORTAL_MYSQL_PORT"; then
    log "MariaDB already running on 127.0.0.1:$PORTAL_MYSQL_PORT"; return
  fi
  port_open "$PORTAL_MYSQL_PORT" && die "port $PORTAL_MYSQL_PORT is taken by another program (set PORTAL_MYSQL_PORT)"
  mkdir -p "$MARIADB_DIR"
  if [ ! -d "$MARIADB_DIR/mysql" ]; then
    log "MariaDB: initialising $MARIADB_DIR"
    mariadb-install-db --no-defaults --datadir="$MARIADB_DIR" --auth-root-authentication-method=normal \
      --user=root >"$D/mariadb-install.log" 2>&1 || { tail -n 25 "$D/mariadb-install.log" >&2; die "MariaDB initialisation failed"; }
  fi
  log "MariaDB: starting on 127.0.0.1:$PORTAL_MYSQL_PORT"
  : >"$D/mariadb.log"
  setsid nohup "$MARIADBD" --no-defaults --datadir="$MARIADB_DIR" --socket="$D/mariadb.sock" \
    --port="$PORTAL_MYSQL_PORT" --bind-address=127.0.0.1 --user=root \
    --log-error="$D/mariadb.log" --pid-file="$D/mariadb.pid" \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
    --innodb-flush-log-at-trx-commit=2 --innodb-buffer-pool-size=1G --max-connections=500 >/dev/null 2>&1 &
  echo $! >"$D/mariadb.pid"
  wait_for MariaDB "$PORTAL_MYSQL_PORT" "$D/mariadb.pid" "$D/mariadb.log"
  # The app's account may create databases: the test suite gives each test its own.
  # 'localhost' too: MariaDB's anonymous ''@localhost account would otherwise win for TCP logins from 127.0.0.1.
  mysql_root -e "CREATE USER IF NOT EXISTS 'portal'@'%' IDENTIFIED BY 'portal';
                 CREATE USER IF NOT EXISTS 'portal'@'localhost' IDENTIFIED BY 'portal';
                 GRANT ALL PRIVILEGES ON *.* TO 'portal'@'%';
                 GRANT ALL PRIVILEGES ON *.* TO 'portal'@'localhost';
                 CREATE DATABASE IF NOT EXISTS portal;" \
    || die "MariaDB is up but the portal user could not be created"
}

start_ferretdb() {
  if pid_alive "$D/ferretdb.pid" && port_open "$PORTAL_MONGO_PORT"; then
    log "FerretDB already running on 127.0.0.1:$PORTAL_MONGO_PORT"; return
  fi
  port_open "$PORTAL_MONGO_PORT" && die "port $PORTAL_MONGO_PORT is taken by another program (set PORTAL_MONGO_PORT)"
  command -v ferretdb >/dev/null || die "ferretdb is not installed: run scripts/install.sh"
  mkdir -p "$FERRET_DIR/data" "$FERRET_DIR/state"
  log "FerretDB: starting on 127.0.0.1:$PORTAL_MONGO_PORT (SQLite in $FERRET_DIR/data)"
  setsid nohup ferretdb --handler=sqlite --sqlite-url="file:$FERRET_DIR/data/" \
    --listen-addr="127.0.0.1:$PORTAL_MONGO_PORT" --state-dir="$FERRET_DIR/state" \
    --debug-addr="127.0.0.1:$PORTAL_FERRET_DEBUG_PORT" --telemetry=disable --log-level=warn \
    >"$D/ferretdb.log" 2>&1 &
  echo $! >"$D/ferretdb.pid"
  wait_for FerretDB "$PORTAL_MONGO_PORT" "$D/ferretdb.pid" "$D/ferretdb.log"
}

start_mailpit() {
  if pid_alive "$D/mailpit.pid" && port_open "$PORTAL_SMTP_PORT"; then
    log "Mailpit already running (SMTP 127.0.0.1:$PORTAL_SMTP_PORT, API http://127.0.0.1:$PORTAL_MAILPIT_PORT)"; return
  fi
  for p in "$PORTAL_SMTP_PORT" "$PORTAL_MAILPIT_PORT"; do
    port_open "$p" && die "port $p is taken by another program (set PORTAL_SMTP_PORT / PORTAL_MAILPIT_PORT)"
  done
  command -v mailpit >/dev/null || die "mailpit is not installed: run scripts/install.sh"
  mkdir -p "$D/mailpit"
  log "Mailpit: SMTP on 127.0.0.1:$PORTAL_SMTP_PORT, API on http://127.0.0.1:$PORTAL_MAILPIT_PORT"
  setsid nohup mailpit --smtp "127.0.0.1:$PORTAL_SMTP_PORT" --listen "127.0.0.1:$PORTAL_MAILPIT_PORT" \
    --database "$D/mailpit/mailpit.db" --max 50000 --quiet >"$D/mailpit.log" 2>&1 &
  echo $! >"$D/mailpit.pid"
  wait_for Mailpit "$PORTAL_SMTP_PORT" "$D/mailpit.pid" "$D/mailpit.log"
}

stop_one() { # name pidfile
  if pid_alive "$2"; then
    log "$1: stopping"
    kill "$(cat "$2")" 2>/dev/null || true
    for _ in $(seq 1 60); do pid_alive "$2" || break; sleep 0.5; done
    pid_alive "$2" && kill -9 "$(cat "$2")" 2>/dev/null || true
  fi
  rm -f "$2"
}

status_one() { # name port pidfile
  if pid_alive "$3" && port_open "$2"; then echo "$1: running on 127.0.0.1:$2 (pid $(cat "$3"))"
  else echo "$1: stopped"; return 1; fi
}

mkdir -p "$D"
case "${1:-status}" in
  start) start_mariadb; start_ferretdb; start_mailpit ;;
  stop) stop_one Mailpit "$D/mailpit.pid"; stop_one FerretDB "$D/ferretdb.pid"; stop_one MariaDB "$D/mariadb.pid" ;;
  status) rc=0; status_one MariaDB "$PORTAL_MYSQL_PORT" "$D/mariadb.pid" || rc=1
          status_one FerretDB "$PORTAL_MONGO_PORT" "$D/ferretdb.pid" || rc=1
          status_one Mailpit "$PORTAL_SMTP_PORT" "$D/mailpit.pid" || rc=1; exit $rc ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
