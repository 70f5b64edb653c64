#!/usr/bin/env bash
# The services the tests talk to (PostgreSQL, Mosquitto, MariaDB) and Chromium for the browser
# tests: started or installed when missing. `make test` runs this first; so does CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# PostgreSQL at 127.0.0.1:5432 (trust auth, user postgres, database test): the store suite runs on it.
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "PostgreSQL is down: starting it"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
    for _ in $(seq 1 60); do
        pg_isready -q -h 127.0.0.1 -p 5432 && break
        sleep 1
    done
fi
pg_isready -h 127.0.0.1 -p 5432
if [ "$(psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'")" != 1 ]; then
    createdb -h 127.0.0.1 -U postgres test
fi

# Chromium for the browser tests (tests/web, Playwright with executable_path: Playwright cannot
# download its own browsers here).
if ! command -v chromium >/dev/null; then
    echo "chromium is missing: installing it"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# Mosquitto at 127.0.0.1:1883: the MQTT integration tests (tests/integrations) talk to a real broker.
broker_up() { (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; }
if ! broker_up; then
    if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
        echo "mosquitto is missing: installing it"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients >/dev/null
    fi
    echo "Mosquitto is down: starting it"
    mkdir -p /run/mosquitto /var/lib/mosquitto /var/log/mosquitto
    chown mosquitto: /run/mosquitto /var/lib/mosquitto /var/log/mosquitto 2>/dev/null || true
    "$(command -v mosquitto || echo /usr/sbin/mosquitto)" -d -c /etc/mosquitto/mosquitto.conf
    for _ in $(seq 1 30); do
        broker_up && break
        sleep 0.5
    done
fi
broker_up || { echo "Mosquitto did not come up on 127.0.0.1:1883" >&2; exit 1; }

# MariaDB at 127.0.0.1:3306 (root without a password): the Traccar import tests read from it.
if ! mysqladmin -h 127.0.0.1 -u root ping >/dev/null 2>&1; then
    echo "MariaDB is down: starting it"
    service mariadb start || (mysqld_safe >/dev/null 2>&1 &)
    for _ in $(seq 1 60); do
        mysqladmin -h 127.0.0.1 -u root ping >/dev/null 2>&1 && break
        sleep 1
    done
fi
mysqladmin -h 127.0.0.1 -u root ping


# NATS with JetStream at 127.0.0.1:4222: the cluster tests (tests/cluster) run two nodes on it.
nats_up() { (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; }
if ! nats_up; then
    if [ ! -x /usr/sbin/nats-server ] && ! command -v nats-server >/dev/null; then
        echo "nats-server is missing: installing it"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null
    fi
    echo "NATS is down: starting it (JetStream on)"
    mkdir -p /var/lib/nats-server
    start-stop-daemon --start --oknodo --background --exec "$(command -v nats-server || echo /usr/sbin/nats-server)" \
        -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server
    for _ in $(seq 1 30); do
        nats_up && break
        sleep 0.5
    done
fi
nats_up || { echo "NATS did not come up on 127.0.0.1:4222" >&2; exit 1; }
