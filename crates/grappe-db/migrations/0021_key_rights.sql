-- A gateway key may start fine-tuning jobs (which spend GPU-hours outside its token limits)
-- only when made for it; keys made before are not.
ALTER TABLE gateway_keys ADD COLUMN fine_tuning BIGINT NOT NULL DEFAULT 0;
