-- PostgreSQL roles for the settlement ledger: an owner, an application role and an
-- auditor role.
--
-- Run as a superuser (or a role with CREATEROLE that owns the schema's objects),
-- AFTER `ledger init`, and again after every `ledger init` that adds tables:
-- it is idempotent. The owner role owns the schema, the tables and the
-- append-only trigger function (never used by the application); the app role is
-- what the application logs in as (set its password: ALTER ROLE ... PASSWORD).
--
-- owner role: {owner}    app role: {app}    auditor role: {auditor}    schema: {schema}
--
-- The app role gets SELECT and INSERT on `events` and nothing else there: no
-- UPDATE, DELETE or TRUNCATE, and since it neither owns the table nor is a member
-- of the owner role, it cannot ALTER TABLE ... DISABLE TRIGGER, drop the triggers
-- or the table; `SET session_replication_role` needs a superuser. Projection
-- tables (every other table) get SELECT, INSERT, UPDATE, DELETE.
--
-- The auditor role may only read: SELECT on every table, nothing else, and its
-- transactions are read-only by default. Every auditor command (verify, history,
-- events, stats/dlq --as-of, replay --check, reconcile) folds in memory and
-- writes nothing, so it runs as this role, also against a hot standby.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{owner}') THEN
        CREATE ROLE {owner} NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{app}') THEN
        CREATE ROLE {app} LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{auditor}') THEN
        CREATE ROLE {auditor} LOGIN;
    END IF;
    -- the app must never inherit the owner's rights, nor the auditor anyone's
    IF pg_has_role('{app}', '{owner}', 'MEMBER') THEN
        EXECUTE 'REVOKE {owner} FROM {app}';
    END IF;
    IF pg_has_role('{auditor}', '{owner}', 'MEMBER') THEN
        EXECUTE 'REVOKE {owner} FROM {auditor}';
    END IF;
    IF pg_has_role('{auditor}', '{app}', 'MEMBER') THEN
        EXECUTE 'REVOKE {app} FROM {auditor}';
    END IF;
END $$;

ALTER ROLE {app} NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION;
ALTER ROLE {auditor} NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION;
ALTER ROLE {auditor} SET default_transaction_read_only = on;

-- the owner owns the schema and everything in it (tables, views, functions)
ALTER SCHEMA {schema} OWNER TO {owner};

DO $$
DECLARE
    item record;
BEGIN
    FOR item IN
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = '{schema}' AND c.relkind IN ('r', 'p', 'v', 'm')
    LOOP
        EXECUTE 'ALTER TABLE {schema}.' || quote_ident(item.relname) || ' OWNER TO {owner}';
    END LOOP;
    FOR item IN
        SELECT p.oid::regprocedure AS signature FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = '{schema}'
    LOOP
        EXECUTE 'ALTER FUNCTION ' || item.signature || ' OWNER TO {owner}';
    END LOOP;
END $$;

-- nobody but the owner creates objects in the schema
REVOKE ALL ON SCHEMA {schema} FROM PUBLIC;
GRANT USAGE ON SCHEMA {schema} TO {app};
GRANT USAGE ON SCHEMA {schema} TO {auditor};

REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {app};
-- projection tables (and any other table): read and write
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {app};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {app};
-- the log: read and append, nothing else
REVOKE ALL ON {schema}.events FROM {app};
GRANT SELECT, INSERT ON {schema}.events TO {app};
-- the migration version: read only
REVOKE ALL ON {schema}.alembic_version FROM {app};
GRANT SELECT ON {schema}.alembic_version TO {app};
-- the auditor: read every table, nothing else
REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {auditor};
REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {auditor};
GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {auditor};
