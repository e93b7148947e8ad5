-- +goose Up
CREATE TABLE shoal_outbox (
    id         BIGINT AUTO_INCREMENT PRIMARY KEY,
    msg_id     VARCHAR(64)  NOT NULL,
    topic      VARCHAR(255) NOT NULL,
    msg_key    VARCHAR(255) NOT NULL,
    headers    TEXT         NOT NULL,
    payload    LONGBLOB       NOT NULL,
    created_ns BIGINT       NOT NULL,
    delay_ms   BIGINT       NOT NULL
);
CREATE TABLE shoal_outbox_lease (
    name       VARCHAR(64)  PRIMARY KEY,
    holder     VARCHAR(128) NOT NULL,
    expires_ms BIGINT       NOT NULL
);
INSERT INTO shoal_outbox_lease (name, holder, expires_ms) VALUES ('relay', '', 0);

-- +goose Down
DROP TABLE shoal_outbox_lease;
DROP TABLE shoal_outbox;
