-- depends: 0003_router_versions
-- Fleet-wide SLO windows without Redis (store/postgres_slo.py): counts per time bucket and "segment|field",
-- alert claims (one page per fleet) and the fleet's recent alerts. Times are the server's clock (epoch s).
CREATE TABLE IF NOT EXISTS slo_counts (
    bucket TEXT NOT NULL,
    field TEXT NOT NULL,
    n BIGINT NOT NULL,
    expires DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (bucket, field)
);
CREATE INDEX IF NOT EXISTS slo_counts_expires ON slo_counts (expires);
CREATE TABLE IF NOT EXISTS slo_alert_claims (
    name TEXT PRIMARY KEY,
    until DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS slo_alerts (
    id BIGSERIAL PRIMARY KEY,
    time DOUBLE PRECISION NOT NULL,
    alert JSONB NOT NULL
);
