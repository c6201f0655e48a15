DROP TABLE IF EXISTS slo_alerts;
DROP TABLE IF EXISTS slo_alert_claims;
DROP TABLE IF EXISTS slo_counts;
