-- +goose Up
-- Times are microseconds since the Unix epoch (UTC); lease times nanoseconds.
CREATE TABLE shoal_events (
    position   INTEGER PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    stream     TEXT NOT NULL,
    version    INTEGER NOT NULL,
    type       TEXT NOT NULL,
    data       BLOB NOT NULL,
    metadata   BLOB,
    created_us INTEGER NOT NULL,
    UNIQUE (stream, version)
);

-- SQLite has one writer at a time (BEGIN IMMEDIATE), so positions are handed out in commit
-- order; the head row is the last position and its time.
CREATE TABLE shoal_events_head (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    position   INTEGER NOT NULL,
    created_us INTEGER NOT NULL
);
INSERT INTO shoal_events_head (id, position, created_us) VALUES (1, 0, 0);

CREATE TABLE shoal_event_checkpoints (
    name       TEXT PRIMARY KEY,
    position   INTEGER NOT NULL,
    updated_us INTEGER NOT NULL
);

CREATE TABLE shoal_event_snapshots (
    stream     TEXT NOT NULL,
    version    INTEGER NOT NULL,
    type       TEXT NOT NULL,
    data       BLOB NOT NULL,
    created_us INTEGER NOT NULL,
    PRIMARY KEY (stream, version)
);

CREATE TABLE shoal_event_groups (
    name       TEXT PRIMARY KEY,
    partitions INTEGER NOT NULL
);

CREATE TABLE shoal_event_group_partitions (
    name       TEXT NOT NULL,
    partition  INTEGER NOT NULL,
    owner      TEXT NOT NULL DEFAULT '',
    expires_ns INTEGER NOT NULL DEFAULT 0,
    checkpoint INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (name, partition)
);

CREATE TABLE shoal_event_group_members (
    name       TEXT NOT NULL,
    member     TEXT NOT NULL,
    expires_ns INTEGER NOT NULL,
    PRIMARY KEY (name, member)
);

-- +goose Down
DROP TABLE shoal_event_group_members;
DROP TABLE shoal_event_group_partitions;
DROP TABLE shoal_event_groups;
DROP TABLE shoal_event_snapshots;
DROP TABLE shoal_event_checkpoints;
DROP TABLE shoal_events_head;
DROP TABLE shoal_events;
