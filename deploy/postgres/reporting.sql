-- Read-only reporting for Grafana: aggregate functions, no access to the tables.
--
-- The Grafana role may only EXECUTE the functions in schema `reporting`; they run as
-- their owner (SECURITY DEFINER) and return counts per category/channel, never an account
-- id, a message payload or a token.  Run once per database, before or after secmon's
-- migrations (PL/pgSQL resolves the tables when a function is called):
--
--   psql -v ON_ERROR_STOP=1 -v grafana_user=grafana_ro -v grafana_password=... -f reporting.sql
--
-- The compose stack runs it from deploy/postgres/initdb/10-grafana-reporting.sh.

CREATE SCHEMA IF NOT EXISTS reporting;

-- Active support cases per category and SLA state (the console's definition: a case is
-- breached once it has passed a due time, paused while waiting for the user).
CREATE OR REPLACE FUNCTION reporting.open_cases_by_sla()
RETURNS TABLE (category text, sla_state text, cases bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  now_ms bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
BEGIN
  RETURN QUERY
  SELECT c.category::text,
         CASE
           WHEN c.breached_ms IS NOT NULL OR (c.paused_ms IS NULL AND c.due_ms < now_ms) THEN 'breached'
           WHEN c.paused_ms IS NOT NULL THEN 'paused (waiting for user)'
           WHEN c.due_ms < now_ms + 3600000 THEN 'due within 1h'
           ELSE 'within SLA'
         END AS sla_state,
         count(*) AS cases
  FROM support_case AS c
  WHERE c.status IN ('new', 'open', 'pending_user')
  GROUP BY 1, 2
  ORDER BY 1, 2;
END
$$;

-- Undelivered outbox messages per channel and status: pending, in flight and dead (given
-- up, kept for inspection; no metric shows how many are left in that state).
CREATE OR REPLACE FUNCTION reporting.outbox_by_status()
RETURNS TABLE (channel text, status text, messages bigint, oldest timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  SELECT o.channel::text, o.status::text, count(*), to_timestamp(min(o.created_ms) / 1000.0)
  FROM outbox AS o
  WHERE o.status <> 'sent'
  GROUP BY 1, 2
  ORDER BY 1, 2;
END
$$;

REVOKE ALL ON SCHEMA reporting FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA reporting FROM PUBLIC;

SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'grafana_user', :'grafana_password')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'grafana_user')
\gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'grafana_user', :'grafana_password')
\gexec

GRANT CONNECT ON DATABASE :"DBNAME" TO :"grafana_user";
GRANT USAGE ON SCHEMA reporting TO :"grafana_user";
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA reporting TO :"grafana_user";
