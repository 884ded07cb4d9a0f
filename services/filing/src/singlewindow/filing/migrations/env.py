from singlewindow.runtime.migrations import run_migrations

run_migrations()
