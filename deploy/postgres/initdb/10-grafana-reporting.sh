#!/bin/sh
# Runs once, when the compose stack's PostgreSQL volume is initialised (the official image
# runs /docker-entrypoint-initdb.d/*.sh as the superuser POSTGRES_USER): the read-only
# reporting functions and the Grafana role (deploy/postgres/reporting.sql).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v grafana_user="${GRAFANA_DB_USER:-grafana_ro}" \
  -v grafana_password="$GRAFANA_DB_PASSWORD" \
  -f /etc/secmon/reporting.sql
