"""Operating the installation: set-up, the GO/NO-GO check, retention, the audit chain's verification."""
