"""The PostgreSQL replica's schema (docs/postgresql.md is the reference users read): the
internal tables, their append-only triggers, the table of one QLDB table, and the names
(identifiers, index names) the destination builds. It changes when the schema does."""

from __future__ import annotations

import hashlib
from typing import Any

INTERNAL_TABLES = (
    "qldb_checkpoint",
    "qldb_tables",
    "qldb_table_ids",
    "qldb_indexes",
    "qldb_history",
    "qldb_blocks",
)
MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1: a longer name would be silently truncated

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.qldb_checkpoint (
    ledger text NOT NULL, strand_id text NOT NULL, sequence_no bigint NOT NULL, part integer,
    block_hash bytea NOT NULL, PRIMARY KEY (ledger, strand_id));
CREATE TABLE IF NOT EXISTS {s}.qldb_tables (
    name text PRIMARY KEY, active boolean NOT NULL,
    created_sequence bigint, dropped_sequence bigint);
CREATE TABLE IF NOT EXISTS {s}.qldb_table_ids (
    ledger text NOT NULL, source_table_id text NOT NULL, name text NOT NULL,
    PRIMARY KEY (ledger, source_table_id));
CREATE TABLE IF NOT EXISTS {s}.qldb_indexes (
    table_name text NOT NULL, path text NOT NULL, index_name text NOT NULL,
    PRIMARY KEY (table_name, path));
CREATE TABLE IF NOT EXISTS {s}.qldb_history (
    table_name text NOT NULL, document_id text NOT NULL, version integer NOT NULL,
    data jsonb, ion bytea, metadata bytea, revision_hash bytea,
    ledger text NOT NULL, strand_id text NOT NULL, block_sequence bigint NOT NULL,
    txn_id text, committed_at timestamptz, deleted boolean NOT NULL,
    PRIMARY KEY (document_id, version));
CREATE INDEX IF NOT EXISTS qldb_history_block ON {s}.qldb_history (strand_id, block_sequence);
CREATE TABLE IF NOT EXISTS {s}.qldb_blocks (
    ledger text NOT NULL, strand_id text NOT NULL, sequence_no bigint NOT NULL,
    block_hash bytea NOT NULL, previous_block_hash bytea, entries_hash bytea,
    entries_hash_list bytea[], txn_id text, committed_at timestamptz,
    PRIMARY KEY (ledger, strand_id, sequence_no));
CREATE OR REPLACE FUNCTION {s}.qldb_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER IF EXISTS qldb_history_append_only ON {s}.qldb_history;
CREATE TRIGGER qldb_history_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
    ON {s}.qldb_history FOR EACH STATEMENT EXECUTE FUNCTION {s}.qldb_append_only();
DROP TRIGGER IF EXISTS qldb_blocks_append_only ON {s}.qldb_blocks;
CREATE TRIGGER qldb_blocks_append_only BEFORE UPDATE OR DELETE OR TRUNCATE
    ON {s}.qldb_blocks FOR EACH STATEMENT EXECUTE FUNCTION {s}.qldb_append_only();
"""

TABLE = """
CREATE TABLE IF NOT EXISTS {t} (
    id text PRIMARY KEY, version integer NOT NULL, data jsonb, ion bytea NOT NULL,
    committed_at timestamptz, block_sequence bigint, txn_id text)
"""


def ident(name: str) -> Any:
    from psycopg import sql

    return sql.Identifier(name)


def index_name(table: str, path: str) -> str:
    """A stable PostgreSQL index name for a QLDB index on ``table (path)``, within 63 bytes."""
    return "qldb_idx_" + hashlib.sha256(f"{table}\0{path}".encode()).hexdigest()[:24]
