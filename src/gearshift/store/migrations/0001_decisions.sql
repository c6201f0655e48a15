-- The decision log: indexed filter columns plus the full record as JSONB (one row per gateway request).
CREATE TABLE IF NOT EXISTS decisions (
    request_id TEXT PRIMARY KEY,
    time DOUBLE PRECISION NOT NULL,
    tier TEXT,
    status TEXT,
    record JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_time ON decisions (time);
CREATE INDEX IF NOT EXISTS decisions_tier ON decisions (tier, time);
CREATE INDEX IF NOT EXISTS decisions_status ON decisions (status, time);
