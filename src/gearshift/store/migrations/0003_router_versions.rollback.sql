DROP TABLE IF EXISTS router_promotions;
DROP TABLE IF EXISTS router_versions;
