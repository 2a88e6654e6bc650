# Sourced by dev.sh and test.sh: makes PostgreSQL and Redis reachable. A local server that
# is installed but stopped is started; one that is not installed is a clear error.

: "${POSTGRES_ADMIN_URL:=postgres://postgres@127.0.0.1:5432/postgres}"
: "${REDIS_URL:=redis://127.0.0.1:6379/0}"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

postgres_ready() { psql "$POSTGRES_ADMIN_URL" -qtAc 'SELECT 1' >/dev/null 2>&1; }
redis_ready() { [ "$(redis-cli -u "$REDIS_URL" ping 2>/dev/null)" = "PONG" ]; }

wait_for() { # wait_for NAME CHECK
  for _ in $(seq 1 60); do "$2" && return 0; sleep 0.5; done
  die "$1 did not become reachable within 30 s"
}

ensure_postgres() {
  command -v psql >/dev/null || die "psql not found: install PostgreSQL's client (Debian: apt-get install postgresql-client)"
  postgres_ready && return 0
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    say "starting the local PostgreSQL $version cluster"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || die "could not start PostgreSQL $version"
    wait_for PostgreSQL postgres_ready
  else
    die "PostgreSQL is not reachable at $POSTGRES_ADMIN_URL and no local server is installed (Debian: apt-get install postgresql)"
  fi
}

ensure_redis() {
  command -v redis-cli >/dev/null || die "redis-cli not found: install Redis (Debian: apt-get install redis-server)"
  redis_ready && return 0
  if command -v redis-server >/dev/null; then
    say "starting a local Redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/dev.log || die "could not start Redis"
    wait_for Redis redis_ready
  else
    die "Redis is not reachable at $REDIS_URL and redis-server is not installed (Debian: apt-get install redis-server)"
  fi
}

# create_database NAME: creates it unless it exists.
create_database() {
  local exists
  exists=$(psql "$POSTGRES_ADMIN_URL" -qtAc "SELECT 1 FROM pg_database WHERE datname = '$1'")
  if [ "$exists" != "1" ]; then
    say "creating database $1"
    psql "$POSTGRES_ADMIN_URL" -qc "CREATE DATABASE \"$1\"" >/dev/null
  fi
}
