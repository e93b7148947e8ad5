-- +goose Up
CREATE TABLE shoal_events (
    position   BIGINT PRIMARY KEY,
    id         UUID NOT NULL UNIQUE,
    stream     TEXT NOT NULL,
    version    BIGINT NOT NULL,
    type       TEXT NOT NULL,
    data       JSON NOT NULL,
    metadata   JSON,
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (stream, version)
);

-- The head: the last position appended and its time. Every append locks this one row until it
-- commits, so positions are handed out in commit order: when position P is visible, every
-- position below it is too (no gap a reader could see and later find filled).
CREATE TABLE shoal_events_head (
    id         INT PRIMARY KEY CHECK (id = 1),
    position   BIGINT NOT NULL,
    created_at TIMESTAMPTZ
);
INSERT INTO shoal_events_head (id, position) VALUES (1, 0);

CREATE TABLE shoal_event_checkpoints (
    name       TEXT PRIMARY KEY,
    position   BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE shoal_event_snapshots (
    stream     TEXT NOT NULL,
    version    BIGINT NOT NULL,
    type       TEXT NOT NULL,
    data       JSON NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (stream, version)
);

CREATE TABLE shoal_event_groups (
    name       TEXT PRIMARY KEY,
    partitions INT NOT NULL
);

CREATE TABLE shoal_event_group_partitions (
    name       TEXT NOT NULL,
    partition  INT NOT NULL,
    owner      TEXT NOT NULL DEFAULT '',
    expires_ns BIGINT NOT NULL DEFAULT 0,
    checkpoint BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (name, partition)
);

CREATE TABLE shoal_event_group_members (
    name       TEXT NOT NULL,
    member     TEXT NOT NULL,
    expires_ns BIGINT NOT NULL,
    PRIMARY KEY (name, member)
);

-- shoal_events_append appends in one round trip. Result: status 'ok' with the first version
-- and position, 'conflict' with the stream's version, or 'duplicate' when an event id is
-- already stored (the caller then reads those events and decides whether it is a retry).
-- +goose StatementBegin
CREATE FUNCTION shoal_events_append(p_stream TEXT, p_expected BIGINT, p_ids TEXT[], p_types TEXT[],
    p_data TEXT[], p_meta TEXT[], p_now TIMESTAMPTZ, p_channel TEXT,
    OUT status TEXT, OUT first_version BIGINT, OUT first_position BIGINT, OUT current_version BIGINT,
    OUT event_time TIMESTAMPTZ)
LANGUAGE plpgsql AS $$
DECLARE
    head BIGINT;
    last_time TIMESTAMPTZ;
    n INT := cardinality(p_ids);
BEGIN
    SELECT h.position, h.created_at INTO head, last_time FROM shoal_events_head h WHERE h.id = 1 FOR UPDATE;
    SELECT e.version INTO current_version FROM shoal_events e WHERE e.stream = p_stream ORDER BY e.version DESC LIMIT 1;
    current_version := coalesce(current_version, 0);
    IF EXISTS (SELECT 1 FROM shoal_events e WHERE e.id = ANY(p_ids::uuid[])) THEN
        status := 'duplicate';
        RETURN;
    END IF;
    IF NOT (p_expected = -1 OR (p_expected = -2 AND current_version > 0) OR p_expected = current_version) THEN
        status := 'conflict';
        RETURN;
    END IF;
    event_time := greatest(p_now, coalesce(last_time, p_now));
    INSERT INTO shoal_events (position, id, stream, version, type, data, metadata, created_at)
        SELECT head + i, p_ids[i]::uuid, p_stream, current_version + i, p_types[i], p_data[i]::json, nullif(p_meta[i], '')::json,
            event_time
        FROM generate_subscripts(p_ids, 1) AS i;
    UPDATE shoal_events_head SET position = head + n, created_at = event_time WHERE id = 1;
    PERFORM pg_notify(p_channel, (head + n)::text);
    status := 'ok';
    first_version := current_version + 1;
    first_position := head + 1;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION shoal_events_append(TEXT, BIGINT, TEXT[], TEXT[], TEXT[], TEXT[], TIMESTAMPTZ, TEXT);
DROP TABLE shoal_event_group_members;
DROP TABLE shoal_event_group_partitions;
DROP TABLE shoal_event_groups;
DROP TABLE shoal_event_snapshots;
DROP TABLE shoal_event_checkpoints;
DROP TABLE shoal_events_head;
DROP TABLE shoal_events;
