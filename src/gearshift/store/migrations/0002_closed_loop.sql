-- depends: 0001_decisions
-- Closed-loop tables beside the decisions (same shape as store/labels.py's SQLite schema), joined on request_id.
CREATE TABLE IF NOT EXISTS shadow_labels (
    request_id TEXT PRIMARY KEY,
    time DOUBLE PRECISION NOT NULL,
    tier TEXT,
    label TEXT,
    gap DOUBLE PRECISION,
    record JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS shadow_labels_time ON shadow_labels (time);
CREATE TABLE IF NOT EXISTS triage_items (
    id BIGSERIAL PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE,
    time DOUBLE PRECISION NOT NULL,
    gap DOUBLE PRECISION,
    label TEXT,
    labelled_at DOUBLE PRECISION,
    item JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS triage_open ON triage_items (label, time);
CREATE TABLE IF NOT EXISTS feedback_events (
    id BIGSERIAL PRIMARY KEY,
    request_id TEXT NOT NULL,
    time DOUBLE PRECISION NOT NULL,
    decision_time DOUBLE PRECISION,
    signal TEXT NOT NULL,
    value DOUBLE PRECISION,
    comment TEXT,
    source TEXT NOT NULL,
    tier TEXT,
    segment TEXT  -- JSON text kept byte-exact: signal rates group by it and compare with decision segments
);
CREATE INDEX IF NOT EXISTS feedback_request ON feedback_events (request_id);
CREATE INDEX IF NOT EXISTS feedback_decision_time ON feedback_events (decision_time);
