-- +goose Up
-- A rebuild asked for from outside the service (shoal events rebuild NAME): a running
-- Projector sees it and rebuilds.
ALTER TABLE shoal_projections ADD COLUMN rebuild_requested_ns BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE shoal_projections DROP COLUMN rebuild_requested_ns;
