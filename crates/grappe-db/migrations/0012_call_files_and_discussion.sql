-- An application's attachments are files in the data store: one store dataset per application
-- (`application-ID`), whose versions are the attachment sets. The application points at its
-- current set; each saved version of the application records the set it had. None: no files.
ALTER TABLE applications ADD COLUMN attachments TEXT;
ALTER TABLE application_versions ADD COLUMN attachments TEXT;

-- The jury's discussion of an application: messages of its assigned, non-conflicted jurors
-- (once their own review is in) and of the call's managers. Never edited, never deleted.
CREATE TABLE call_messages (
    id {{id}},
    call_id BIGINT NOT NULL REFERENCES calls (id),
    application_id BIGINT NOT NULL REFERENCES applications (id),
    user_id BIGINT NOT NULL,
    body TEXT NOT NULL,
    posted_at BIGINT NOT NULL
);
CREATE INDEX call_messages_application ON call_messages (application_id, id);
