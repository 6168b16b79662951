#!/usr/bin/env bash
# Make sure the PostgreSQL, MariaDB and Redis servers the test suite uses are up, and
# that chromium (for the browser tests) is installed.
#
#   PostgreSQL  127.0.0.1:5432, user postgres, trust auth, database "test"
#   MariaDB     127.0.0.1:3306, user root, empty password, database "test"
#   Redis       127.0.0.1:6379, no password, nothing saved to disk (the CeleryExecutor's
#               broker in tests/operators/test_airflow_deployment.py, on database 7)
#
# A running server is left alone. A stopped one is started. A missing one is
# installed with apt-get and set up as above, but only as root on a machine
# with apt-get (CI, containers); anywhere else the script says what is missing.
# It then waits until each accepts connections (SERVICES_TIMEOUT seconds, 60
# by default).
#
# Exit status: 0 when every server answers. When one cannot be had, non-zero
# under CI=true (a missing database in CI is a failure) and 0 otherwise, so a
# local test run goes on and skips the tests that need it.
set -euo pipefail

TIMEOUT="${SERVICES_TIMEOUT:-60}"
PG_HOST=127.0.0.1
# Another cluster and port only to try this script out beside the real server.
PG_PORT="${PG_PORT:-5432}"
PG_CLUSTER="${PG_CLUSTER:-main}"
MY_HOST=127.0.0.1
MY_PORT=3306
REDIS_HOST=127.0.0.1
REDIS_PORT=6379

is_ci() {
    case "${CI:-}" in
        true | TRUE | True | 1 | yes) return 0 ;;
        *) return 1 ;;
    esac
}

log() { echo "services: $*" >&2; }

# Fails under CI; locally a missing server only means skipped tests.
give_up() {
    log "$*"
    if is_ci; then
        exit 1
    fi
    log "continuing: tests that need this server will be skipped"
    exit 0
}

can_install() { [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; }

APT_UPDATED=
apt_install() {
    if [[ -z "$APT_UPDATED" ]]; then
        apt-get update -qq
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Poll "$@" until it succeeds or TIMEOUT seconds have passed.
wait_for() {
    local what="$1"
    shift
    local deadline=$((SECONDS + TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        sleep 0.5
    done
    log "$what is ready"
}

# -- PostgreSQL ----------------------------------------------------------------

pg_ready() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2 >/dev/null 2>&1; }

# The version of the existing cluster named $PG_CLUSTER, else the newest installed version.
pg_version() {
    local conf
    for conf in /etc/postgresql/*/"$PG_CLUSTER"/postgresql.conf; do
        if [[ -f "$conf" ]]; then
            basename "$(dirname "$(dirname "$conf")")"
            return
        fi
    done
    [[ -d /usr/lib/postgresql ]] || return 0
    find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort -V | tail -n 1
}

pg_psql() { psql -X -q -h "$PG_HOST" -p "$PG_PORT" -U postgres "$@"; }

# Trust auth for local connections, as the test fixtures connect without a password.
pg_trust_local() {
    local hba="/etc/postgresql/$1/$PG_CLUSTER/pg_hba.conf"
    if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
        log "setting trust auth for 127.0.0.1 and ::1 in $hba"
        # pg_hba.conf is read top-down: the first matching line wins.
        printf '%s\n' \
            'local all all trust' \
            'host all all 127.0.0.1/32 trust' \
            'host all all ::1/128 trust' \
            | cat - "$hba" >"$hba.new"
        mv "$hba.new" "$hba"
        chown postgres:postgres "$hba"
    fi
}

ensure_postgres() {
    local fresh='' version
    if pg_ready; then
        log "PostgreSQL is running"
    else
        if [[ -z "$(pg_version)" ]]; then
            can_install || give_up "PostgreSQL is not installed (run this script as root to install it)"
            log "installing PostgreSQL"
            apt_install postgresql postgresql-client
            fresh=1
        fi
        version="$(pg_version)"
        if [[ ! -f "/etc/postgresql/$version/$PG_CLUSTER/postgresql.conf" ]]; then
            log "creating cluster $version/$PG_CLUSTER on port $PG_PORT"
            pg_createcluster -p "$PG_PORT" "$version" "$PG_CLUSTER" >/dev/null
            fresh=1
        fi
        if [[ -n "$fresh" ]]; then
            pg_trust_local "$version"
            # The package may have started the server already, with its own pg_hba.conf.
            if pg_ready; then
                pg_ctlcluster --skip-systemctl-redirect "$version" "$PG_CLUSTER" reload
            fi
        fi
        if ! pg_ready; then
            log "starting PostgreSQL $version/$PG_CLUSTER"
            pg_ctlcluster --skip-systemctl-redirect "$version" "$PG_CLUSTER" start \
                || give_up "PostgreSQL $version/$PG_CLUSTER did not start"
        fi
        wait_for PostgreSQL pg_ready || give_up "PostgreSQL did not accept connections in ${TIMEOUT}s"
    fi
    pg_psql -d postgres -c 'SELECT 1' >/dev/null \
        || give_up "PostgreSQL is up but user postgres cannot log in from $PG_HOST without a password"
    if [[ "$(pg_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'")" != 1 ]]; then
        pg_psql -d postgres -c 'CREATE DATABASE test'
    fi
}

# -- MariaDB -------------------------------------------------------------------

# Succeeds once the server answers, even if it refuses the login.
my_ready() { mysqladmin --connect-timeout=2 -h "$MY_HOST" -P "$MY_PORT" -u root ping >/dev/null 2>&1; }

my_sql() { mysql --connect-timeout=5 -h "$MY_HOST" -P "$MY_PORT" -u root "$@"; }

# Passwordless root over TCP, as the test fixtures connect that way.
my_provision() {
    log "allowing root without a password from $MY_HOST"
    # Over the socket, as the root account of a fresh install uses unix_socket auth.
    mysql -u root <<'SQL'
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket;
FLUSH PRIVILEGES;
SQL
}

ensure_mariadb() {
    local installed=''
    if my_ready; then
        log "MariaDB is running"
    else
        if [[ ! -x /usr/sbin/mariadbd ]]; then
            can_install || give_up "MariaDB is not installed (run this script as root to install it)"
            log "installing MariaDB"
            apt_install mariadb-server mariadb-client
            installed=1
        fi
        if [[ ! -d /var/lib/mysql/mysql ]]; then
            log "initialising the MariaDB data directory"
            mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
            installed=1
        fi
        if ! my_ready; then
            log "starting MariaDB"
            install -d -o mysql -g mysql /run/mysqld
            start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
        fi
        wait_for MariaDB my_ready || give_up "MariaDB did not accept connections in ${TIMEOUT}s"
        if [[ -n "$installed" ]]; then
            my_provision
        fi
    fi
    my_sql -e 'CREATE DATABASE IF NOT EXISTS test' \
        || give_up "MariaDB is up but root cannot log in from $MY_HOST without a password"
}

# -- Redis ---------------------------------------------------------------------

redis_ready() {
    [[ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]
}

ensure_redis() {
    if redis_ready; then
        log "Redis is running"
        return
    fi
    if ! command -v redis-server >/dev/null; then
        can_install || give_up "Redis is not installed (run this script as root to install it)"
        log "installing Redis"
        apt_install redis-server
    fi
    # The package may have started it already.
    if ! redis_ready; then
        log "starting Redis"
        install -d /var/lib/redis /var/log/redis
        # A throw-away broker: nothing saved, IPv6 loopback only where there is one (-::1).
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
            --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log \
            || give_up "Redis did not start"
    fi
    wait_for Redis redis_ready || give_up "Redis did not accept connections in ${TIMEOUT}s"
}

# The browser the UI tests drive (Playwright with Debian's chromium: Playwright's own
# download needs its CDN). Missing and not installable: the UI tests skip locally and
# fail under CI=true, as the databases do.
CHROMIUM="${TRACKFLOW_CHROMIUM:-/usr/lib/chromium/chromium}"
ensure_chromium() {
    if [[ -x "$CHROMIUM" ]]; then
        log "chromium is installed"
    elif can_install; then
        log "installing chromium (for the browser tests)"
        apt_install chromium
        [[ -x "$CHROMIUM" ]] || give_up "chromium was installed, but $CHROMIUM is not there (set TRACKFLOW_CHROMIUM)"
    elif is_ci; then
        log "chromium is not installed (run this script as root to install it)"
        exit 1
    else
        log "chromium is not installed: the browser tests will be skipped"
    fi
}

ensure_postgres
ensure_mariadb
ensure_chromium
ensure_redis
