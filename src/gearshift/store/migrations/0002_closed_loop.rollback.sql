DROP TABLE IF EXISTS feedback_events;
DROP TABLE IF EXISTS triage_items;
DROP TABLE IF EXISTS shadow_labels;
