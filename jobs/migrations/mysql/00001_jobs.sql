-- +goose Up
CREATE TABLE shoal_jobs (
    id               BIGINT AUTO_INCREMENT PRIMARY KEY,
    kind             VARCHAR(255) NOT NULL,
    queue            VARCHAR(128) NOT NULL,
    state            VARCHAR(16)  NOT NULL,
    priority         INT          NOT NULL,
    attempt          INT          NOT NULL,
    max_attempts     INT          NOT NULL,
    args             LONGTEXT     NOT NULL,
    run_at           BIGINT       NOT NULL,
    created_at       BIGINT       NOT NULL,
    attempted_at     BIGINT       NULL,
    finalized_at     BIGINT       NULL,
    lease_until      BIGINT       NULL,
    worker           VARCHAR(64)  NULL,
    timeout_ms       BIGINT       NOT NULL,
    unique_key       VARCHAR(128) NULL UNIQUE,
    unique_states    VARCHAR(64)  NULL,
    tags             TEXT         NOT NULL,
    metadata         TEXT         NOT NULL,
    cancel_requested SMALLINT     NOT NULL,
    INDEX shoal_jobs_fetch (state, queue, priority, run_at, id),
    INDEX shoal_jobs_running (state, worker),
    INDEX shoal_jobs_lease (state, lease_until),
    INDEX shoal_jobs_kind_state (kind, state)
);
CREATE TABLE shoal_job_errors (
    job_id  BIGINT NOT NULL,
    attempt INT    NOT NULL,
    at_ms   BIGINT NOT NULL,
    error   TEXT   NOT NULL,
    INDEX shoal_job_errors_job (job_id)
);
CREATE TABLE shoal_job_limits (
    kind         VARCHAR(255) PRIMARY KEY,
    window_start BIGINT NOT NULL,
    window_count INT    NOT NULL
);
CREATE TABLE shoal_job_schedules (
    name      VARCHAR(255) PRIMARY KEY,
    last_tick BIGINT NOT NULL
);

-- +goose Down
DROP TABLE shoal_job_schedules;
DROP TABLE shoal_job_limits;
DROP TABLE shoal_job_errors;
DROP TABLE shoal_jobs;
