"""The read-only web console, `shadowgate serve` (issue 20): app.py (pages), auth.py (accounts, sessions, CSRF), data.py (the report runner per period)."""
