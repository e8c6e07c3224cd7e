"""Google Workspace delivery: Gmail (the email step) and Google Drive (the archive step), through a
service account with domain-wide delegation. See docs/delivery.md, "Google Workspace"."""
