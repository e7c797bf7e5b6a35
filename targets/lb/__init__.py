"""nginx and HAProxy in front of replicated backends (see target.py)."""
