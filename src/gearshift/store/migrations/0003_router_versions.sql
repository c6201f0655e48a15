-- depends: 0002_closed_loop
-- Router versions and their promotion history (same shape as store/versions.py's SQLite schema).
CREATE TABLE IF NOT EXISTS router_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    router TEXT NOT NULL,
    path TEXT NOT NULL,
    status TEXT NOT NULL,
    thresholds JSONB,
    metrics JSONB NOT NULL,
    PRIMARY KEY (name, version)
);
-- at most one champion, enforced by the database so two concurrent promotions cannot both win
CREATE UNIQUE INDEX IF NOT EXISTS router_versions_one_champion ON router_versions (status) WHERE status = 'champion';
CREATE TABLE IF NOT EXISTS router_promotions (
    id BIGSERIAL PRIMARY KEY,
    time DOUBLE PRECISION NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    previous_name TEXT,
    previous_version INTEGER,
    rolled_back BOOLEAN NOT NULL DEFAULT FALSE,
    note TEXT
);
