-- A model's recipe: how its versions are fine-tuned and served by jobs (JSON, set by an
-- administrator when the model is registered); none: Grappe's built-in language model's.
ALTER TABLE gateway_models ADD COLUMN recipe TEXT;
