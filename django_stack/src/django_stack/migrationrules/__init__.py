"""Zero-downtime migration rules: refuse migrations that break the code still running during a deploy."""
