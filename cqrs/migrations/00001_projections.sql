-- +goose Up
-- The checkpoint of each projection, in the read model's own database: it moves in the same
-- transaction as the read model's rows, so an event is applied exactly once.
CREATE TABLE shoal_projections (
    name       VARCHAR(200) PRIMARY KEY,
    position   BIGINT NOT NULL,
    tbl        VARCHAR(200) NOT NULL,
    rebuilt_ns BIGINT NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE shoal_projections;
