#!/usr/bin/env bash
# Start any of the local Postgres, Redis and RabbitMQ that is not answering, and wait for it.
# Used by .ci/run and `make servers`; a no-op where all three already run.
set -euo pipefail

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  local name=$1 port=$2
  for _ in $(seq 1 120); do
    if answers "$port"; then echo "$name: answering on 127.0.0.1:$port"; return 0; fi
    sleep 0.5
  done
  echo "$name: still not answering on 127.0.0.1:$port after 60 s" >&2
  return 1
}

if ! answers 5432; then
  echo "postgres: not answering, starting it"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start || true
fi
if ! answers 6379; then
  echo "redis: not answering, starting it"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
if ! answers 5672; then
  echo "rabbitmq: not answering, starting it"
  rabbitmq-server -detached || true
fi

wait_for postgres 5432
wait_for redis 6379
wait_for rabbitmq 5672
